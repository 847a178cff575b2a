//! Text for HTML pages: the live page's login form and `driftwatch report` put user data
//! (monitor, feature and group names, values, messages) into HTML with [`escape`].

/// `text` safe inside HTML text and quoted attribute values (`& < > " '` escaped).
///
/// ```
/// assert_eq!(driftwatch::present::html::escape("<b a='1'>&"), "&lt;b a=&#39;1&#39;&gt;&amp;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
