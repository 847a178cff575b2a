//! Object names: the characters a source, baseline or monitor name may have.
//!
//! Names become directory and file names in the data dir (`tables/<monitor>/`,
//! `baselines/<name>/`, `wal/<source>/`), so they are checked before anything touches the
//! file system: 1 to [`MAX_NAME_LEN`] characters, ASCII letters, digits, `_` and `-`,
//! starting with a letter or `_`. That rules out path separators, `..`, dots, spaces,
//! control characters and anything a file system could read differently.
//!
//! ```
//! use driftwatch_sql::validate_object_name;
//! assert!(validate_object_name("iris_drift").is_ok());
//! assert!(validate_object_name("model-7").is_ok());
//! assert!(validate_object_name("../etc").is_err());
//! assert!(validate_object_name("a b").is_err());
//! ```

/// Longest object name.
pub const MAX_NAME_LEN: usize = 128;

/// Checks `name` against the object-name rules (see the module docs); the error says what
/// is wrong.
pub fn validate_object_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "name is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    let first = name.chars().next().expect("not empty");
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "name '{}' must start with a letter or '_'",
            name.escape_default()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "name '{}' contains '{}': names may only contain ASCII letters, digits, '_' and '-'",
            name.escape_default(),
            bad.escape_default()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_like_and_control_names_are_refused() {
        for bad in [
            "", "..", "../x", "a/b", "a\\b", ".hidden", "a.b", "a b", "a\0b", "a\nb", "1abc", "é",
            "-x",
        ] {
            assert!(validate_object_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_object_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(validate_object_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
        for good in ["iris", "Iris_2", "_x", "m-1"] {
            assert!(validate_object_name(good).is_ok(), "{good}");
        }
    }
}
