//! Writing a value so that python-dotenv, Node's dotenv and docker compose all read back exactly
//! that value, whenever each can express it at all.
//!
//! - Unquoted when the value has no `#`, no line break, no edge blanks, no leading quote or
//!   backtick, and no `$` (compose interpolates `$VAR` outside single quotes).
//! - Single quotes when it has no `'`, no backslash and no carriage return: literal in Node and
//!   compose; python-dotenv decodes only `\\` and `\'`; literal newlines work in all.
//! - Double quotes when it has no `"`, no backslash and no `$`, with a newline written `\n` and a
//!   carriage return `\r` (Node expands only those two; a literal CR would be read as LF).
//! - Otherwise no form reads back the same everywhere (Node cannot escape `"` in double quotes,
//!   nor `'` in single ones): double quotes with python-dotenv's escapes, which python-dotenv and
//!   compose read exactly and Node does not. Such a value must not end with a backslash: Node would
//!   take `\"` for an escaped quote and read the following lines into the value, so it is refused.
//!
//! python-dotenv interpolates `${NAME}` in every form (it has no escape for it): such text cannot
//! be written for python-dotenv at all, nor for docker-compose 1.x, which reads env files with
//! python-dotenv; Node reads it literally (compose v2 too, in single quotes, by its documentation;
//! compose v2 is not packaged for Debian 12, so it is not tested here).

/// The text to put after `KEY=`, or `None` for a value no form can carry without making Node's
/// dotenv misread the lines after it.
pub fn quote(value: &str) -> Option<String> {
    if unquoted_ok(value) {
        return Some(value.to_owned());
    }
    if !value.contains(['\'', '\\', '\r']) {
        return Some(format!("'{value}'"));
    }
    if !value.contains(['"', '\\', '$']) {
        return Some(format!(
            "\"{}\"",
            value.replace('\n', "\\n").replace('\r', "\\r")
        ));
    }
    if value.ends_with('\\') {
        return None;
    }
    let mut out = String::with_capacity(value.len() + 8);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    Some(out)
}

fn unquoted_ok(v: &str) -> bool {
    !v.is_empty()
        && !v.contains(['#', '\n', '\r', '$'])
        && !v.starts_with(['\'', '"', '`'])
        // Parsers trim Unicode whitespace (and JavaScript also U+FEFF) around unquoted values.
        && v.trim() == v
        && !v.starts_with('\u{feff}')
        && !v.ends_with('\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_file::parse::parse;

    fn read_back(value: &str) -> String {
        let text = format!("K={}\n", quote(value).expect("writable"));
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(parsed.len(), 1, "{text:?}");
        parsed[0].value.clone()
    }

    #[test]
    fn forms() {
        for (value, written) in [
            ("plain", "plain"),
            ("", "''"),
            ("with space", "with space"),
            (" edge", "' edge'"),
            ("a#b", "'a#b'"),
            ("$HOME", "'$HOME'"),
            ("multi\nline", "'multi\nline'"),
            ("it's", "it's"),
            ("it's\r\n", "\"it's\\r\\n\""),
            ("cr\r", "\"cr\\r\""),
            ("back\\slash", "back\\slash"),
            ("back\\slash\n", "\"back\\\\slash\\n\""),
            ("'quoted'", "\"'quoted'\""),
            ("both ' and \"", "both ' and \""),
        ] {
            assert_eq!(quote(value).as_deref(), Some(written), "{value:?}");
            assert_eq!(read_back(value), value, "{value:?}");
        }
    }

    #[test]
    fn a_quoted_value_ending_in_a_backslash_is_refused() {
        assert_eq!(quote("needs quotes \"and\" ends \\\n\\"), None);
        assert_eq!(quote("unquoted\\").as_deref(), Some("unquoted\\"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn our_parser_reads_back_every_value(value in "[ -~\t\n\r'\"\\\\$#`éü€]{0,40}") {
            if quote(&value).is_some() {
                proptest::prop_assert_eq!(read_back(&value), value);
            }
        }
    }
}
