//! Writing TOML by hand where a daemon prints or appends a table for an operator's config
//! (`suggest`, `discover`, `agents add`): only strings need care.

/// A TOML basic string: `"` and `\` escaped, control characters as `\uXXXX`, so any value (a
/// hand-passed name, a path, a URL) reads back exactly and cannot break the file.
pub fn basic_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
