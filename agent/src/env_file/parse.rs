//! Reading `.env` text as the common dotenv parsers do (python-dotenv's rules, which docker
//! compose shares for quoting): comments, blank lines, `export `, unquoted values with ` #`
//! comments, single quotes (only `\\` and `\'` decoded), double quotes (the usual escapes),
//! quoted values over several lines. Values are literal: no `${VAR}` interpolation.
//! Each assignment keeps the byte spans of its statement and value, so an edit can replace
//! exactly the value and leave every other byte of the file as it was.

use std::ops::Range;

/// One `KEY=VALUE` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    /// 1-based line where the statement starts.
    pub line: u32,
    /// The whole statement, from its line's start to after its last line break.
    pub statement: Range<usize>,
    /// The value as written (quotes included), without any trailing comment.
    pub value_span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: u32,
    pub message: String,
}

/// Whether `key` is a valid name: `[A-Za-z_][A-Za-z0-9_.]*`.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// Every statement of `text`, refusing the first line that is neither blank, a comment nor an
/// assignment (with where and why).
pub fn parse(text: &str) -> Result<Vec<Assignment>, ParseError> {
    statements(text).collect()
}

/// The statements of `text` that parse; lines that do not are skipped (as python-dotenv does
/// with a warning). For showing an existing file; writes use [`parse`].
pub fn parse_lenient(text: &str) -> Vec<Assignment> {
    statements(text).filter_map(Result::ok).collect()
}

fn statements(text: &str) -> impl Iterator<Item = Result<Assignment, ParseError>> + '_ {
    let mut pos = 0;
    let mut line = 1u32;
    std::iter::from_fn(move || loop {
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        let start_line = line;
        let eol = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let content = text[pos..eol].trim_start_matches([' ', '\t']);
        if content.trim_end_matches('\r').is_empty() || content.starts_with('#') {
            pos = (eol + 1).min(text.len());
            line += 1;
            continue;
        }
        let result = statement(text, start, eol);
        return Some(match result {
            Ok((assignment, end, lines)) => {
                pos = end;
                line += lines;
                Ok(Assignment {
                    line: start_line,
                    ..assignment
                })
            }
            Err(message) => {
                pos = (eol + 1).min(text.len());
                line += 1;
                Err(ParseError {
                    line: start_line,
                    message,
                })
            }
        });
    })
}

/// Parses the statement starting at `start` (its line ends at `eol`); returns it, the offset
/// after it, and how many lines it spans.
fn statement(text: &str, start: usize, eol: usize) -> Result<(Assignment, usize, u32), String> {
    let mut i =
        start + (text[start..eol].len() - text[start..eol].trim_start_matches([' ', '\t']).len());
    if let Some(rest) = text[i..eol].strip_prefix("export") {
        if rest.starts_with([' ', '\t']) {
            i += "export".len();
            i += text[i..eol].len() - text[i..eol].trim_start_matches([' ', '\t']).len();
        }
    }
    let key_len = text[i..eol]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(eol - i);
    let key = &text[i..i + key_len];
    if !valid_key(key) {
        return Err("expected KEY=VALUE with KEY of letters, digits, '_' and '.', not starting with a digit".into());
    }
    i += key_len;
    i += text[i..eol].len() - text[i..eol].trim_start_matches([' ', '\t']).len();
    if !text[i..eol].starts_with('=') {
        return Err(format!("expected '=' after {key}"));
    }
    i += 1;
    i += text[i..eol].len() - text[i..eol].trim_start_matches([' ', '\t']).len();
    let value_start = i;
    let (value, value_end) = match text[i..].chars().next() {
        Some(q @ ('\'' | '"')) => {
            let close = closing_quote(text, i + 1, q).ok_or_else(|| {
                format!(
                    "the {} quote of {key} is never closed",
                    if q == '"' { "double" } else { "single" }
                )
            })?;
            let inner = &text[i + 1..close];
            let value = if q == '"' {
                decode_double(inner)
            } else {
                decode_single(inner)
            };
            (value, close + 1)
        }
        _ => {
            let raw = text[i..eol].trim_end_matches('\r');
            // A comment starts at whitespace followed by '#'.
            let cut = raw
                .char_indices()
                .find(|&(j, c)| c == '#' && j > 0 && raw[..j].ends_with([' ', '\t']))
                .map_or(raw.len(), |(j, _)| j);
            let value = raw[..cut].trim_end_matches([' ', '\t']);
            (value.to_owned(), i + value.len())
        }
    };
    // After a quoted value only blanks and a comment may follow on its line.
    let line_end = text[value_end..]
        .find('\n')
        .map_or(text.len(), |j| value_end + j);
    let tail = text[value_end..line_end]
        .trim_end_matches('\r')
        .trim_start_matches([' ', '\t']);
    if !(tail.is_empty() || tail.starts_with('#')) {
        // The text itself is not quoted back: it may be part of a secret.
        return Err(format!("unexpected text after the value of {key}"));
    }
    let end = (line_end + 1).min(text.len());
    let lines = text[start..end].matches('\n').count().max(1) as u32;
    Ok((
        Assignment {
            key: key.to_owned(),
            value,
            line: 0,
            statement: start..end,
            value_span: value_start..value_end,
        },
        end,
        lines,
    ))
}

/// The offset of the quote that closes a value opened with `q` at `from - 1`; a backslash
/// escapes the next character (python-dotenv: `\'` in single quotes, anything in double).
fn closing_quote(text: &str, from: usize, q: char) -> Option<usize> {
    let mut chars = text[from..].char_indices();
    while let Some((j, c)) = chars.next() {
        if c == '\\' {
            if let Some((_, next)) = chars.clone().next() {
                if q == '"' || next == '\'' || next == '\\' {
                    chars.next();
                }
            }
            continue;
        }
        if c == q {
            return Some(from + j);
        }
    }
    None
}

fn decode_single(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('\\' | '\'')) {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

fn decode_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.peek() {
            Some('\\') => '\\',
            Some('\'') => '\'',
            Some('"') => '"',
            Some('a') => '\u{7}',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('v') => '\u{b}',
            _ => {
                out.push('\\');
                continue;
            }
        };
        chars.next();
        out.push(decoded);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse(text)
            .expect("parses")
            .into_iter()
            .map(|a| (a.key, a.value))
            .collect()
    }

    #[test]
    fn forms_the_common_parsers_read() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("A=1", &[("A", "1")]),
            ("A=1\nB=2\n", &[("A", "1"), ("B", "2")]),
            ("# comment\n\n  A = spaced  \n", &[("A", "spaced")]),
            ("export A=1", &[("A", "1")]),
            ("exportA=1", &[("exportA", "1")]),
            ("A=val # comment", &[("A", "val")]),
            ("A=val#not-a-comment", &[("A", "val#not-a-comment")]),
            ("A=", &[("A", "")]),
            ("A=''", &[("A", "")]),
            ("A='single $HOME \\n'", &[("A", "single $HOME \\n")]),
            ("A='it\\'s'", &[("A", "it's")]),
            ("A='back\\\\slash'", &[("A", "back\\slash")]),
            (
                "A=\"tab\\tnew\\nline \\\"q\\\" \\x\"",
                &[("A", "tab\tnew\nline \"q\" \\x")],
            ),
            (
                "A=\"multi\nline\" # c\nB=2",
                &[("A", "multi\nline"), ("B", "2")],
            ),
            ("A='multi\nline'\n", &[("A", "multi\nline")]),
            ("A=1\r\nB=2\r\n", &[("A", "1"), ("B", "2")]),
            ("A=\"x\"\r\n", &[("A", "x")]),
            ("A.b_c=dots", &[("A.b_c", "dots")]),
            ("A=${OTHER}", &[("A", "${OTHER}")]),
            ("A=é ü", &[("A", "é ü")]),
        ];
        for (text, want) in cases {
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(values(text), want, "{text:?}");
        }
    }

    #[test]
    fn refusals_say_where() {
        for (text, line, needle) in [
            (
                "A=1\nB=\"open\nC=3\n",
                2,
                "double quote of B is never closed",
            ),
            ("A='open", 1, "single quote of A is never closed"),
            ("just words\n", 1, "expected '=' after just"),
            ("1A=x", 1, "expected KEY=VALUE"),
            ("A 1", 1, "expected '=' after A"),
            ("A=\"x\" y", 1, "unexpected text after the value of A"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
        assert_eq!(parse_lenient("A=1\njust words\nB=2").len(), 2);
    }

    #[test]
    fn spans_point_at_the_value_and_statement() {
        let text = "# head\nexport A = \"x\" # note\nB=2\n";
        let a = parse(text).expect("parses");
        assert_eq!(&text[a[0].value_span.clone()], "\"x\"");
        assert_eq!(&text[a[0].statement.clone()], "export A = \"x\" # note\n");
        assert_eq!(a[0].line, 2);
        assert_eq!((a[1].line, &text[a[1].value_span.clone()]), (3, "2"));
        let multi = "A=\"1\n2\"\nB=3";
        let a = parse(multi).expect("parses");
        assert_eq!((a[0].line, a[1].line), (1, 3));
    }

    #[test]
    fn keys() {
        for ok in ["A", "_a", "a.b", "A_1"] {
            assert!(valid_key(ok), "{ok}");
        }
        for bad in ["", "1A", "a-b", "a b", "a=b", "ä"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
