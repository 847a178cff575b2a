//! `driftwatch passwd`: makes the entries of the auth file — argon2id password hashes for
//! users, random static tokens stored as BLAKE3 digests — and writes them into the file
//! (created owner-only), replacing an entry of the same name.
//!
//! ```text
//! driftwatch passwd --file users.toml --user alice --role admin     # password from stdin
//! driftwatch passwd --file users.toml --token model-server --role ingest --source iris
//! ```

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use driftwatch_flight::auth::{hash_password, hash_token, new_token};
use toml::{Table, Value};

/// Arguments of `driftwatch passwd`.
#[derive(Debug, clap::Args)]
pub struct PasswdArgs {
    /// Auth file to create or update (TOML); without it the entry is printed.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Make a user entry with a password hash (the password is read from stdin, or asked
    /// for without echo on a terminal).
    #[arg(long, conflicts_with = "token")]
    pub user: Option<String>,
    /// Make a static token entry of this name: a random token is printed once, its digest
    /// stored.
    #[arg(long)]
    pub token: Option<String>,
    /// Role: `admin` (queries and DDL), `read` (queries), `ingest` (HTTP ingest only).
    #[arg(long, default_value = "read", value_parser = ["admin", "read", "ingest"])]
    pub role: String,
    /// For an ingest token: the HTTP sources it may post to (repeatable; default all).
    #[arg(long = "source")]
    pub sources: Vec<String>,
}

/// Runs `driftwatch passwd`.
pub fn run(args: PasswdArgs) -> anyhow::Result<()> {
    let (section, entry, secret) = match (&args.user, &args.token) {
        (Some(user), None) => {
            validate_name(user)?;
            let password = read_password(user)?;
            let mut t = Table::new();
            t.insert("name".into(), Value::String(user.clone()));
            t.insert(
                "password_hash".into(),
                Value::String(hash_password(&password)),
            );
            t.insert("role".into(), Value::String(args.role.clone()));
            ("users", t, None)
        }
        (None, Some(name)) => {
            validate_name(name)?;
            let token = new_token();
            let mut t = Table::new();
            t.insert("name".into(), Value::String(name.clone()));
            t.insert("token_hash".into(), Value::String(hash_token(&token)));
            t.insert("role".into(), Value::String(args.role.clone()));
            if !args.sources.is_empty() {
                t.insert(
                    "sources".into(),
                    Value::Array(args.sources.iter().cloned().map(Value::String).collect()),
                );
            }
            ("tokens", t, Some(token))
        }
        _ => bail!("give --user NAME (a password) or --token NAME (a static token)"),
    };
    match &args.file {
        Some(path) => {
            update_file(path, section, entry)?;
            eprintln!(
                "{}: {} entry written",
                path.display(),
                &section[..section.len() - 1]
            );
        }
        None => {
            let mut doc = Table::new();
            doc.insert(section.into(), Value::Array(vec![Value::Table(entry)]));
            print!("{}", toml::to_string(&doc)?);
        }
    }
    if let Some(token) = secret {
        eprintln!("token (shown once; clients send 'authorization: Bearer <token>'):");
        println!("{token}");
    }
    Ok(())
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_control) {
        bail!(
            "'{}' is not a usable name (no ':' or control characters)",
            name.escape_default()
        );
    }
    Ok(())
}

fn read_password(user: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {user}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.len() < 8 {
        bail!("a password needs at least 8 characters");
    }
    Ok(password)
}

/// Replaces (or appends) the entry of the same name in `section` of the auth file at
/// `path`, written atomically with owner-only permissions.
fn update_file(path: &Path, section: &str, entry: Table) -> anyhow::Result<()> {
    let mut doc: Table = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Table::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let name = entry.get("name").cloned();
    let list = doc
        .entry(section.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    let Value::Array(items) = list else {
        bail!("{}: `{section}` is not a list of entries", path.display());
    };
    items.retain(|item| item.get("name") != name.as_ref());
    items.push(Value::Table(entry));
    let text = toml::to_string(&doc)?;
    driftwatch::durable::write_atomic_private(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::stderr().flush().ok();
    Ok(())
}
