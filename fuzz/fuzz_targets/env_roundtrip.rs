//! Structured `.env` edits: valid keys and hostile values (quotes, backslashes, newlines, CR, `$`,
//! `#`, blanks at the edges, a BOM, any Unicode) written by `apply` into an empty file and then
//! into a file that already holds other keys. Whatever `apply` accepts reads back exactly:
//! `parse(write(x)) == x`; a value it refuses is one `quote` cannot carry, and nothing else is.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use fleetdeck_agent::env_file::apply;
use fleetdeck_agent::env_file::parse::{parse, valid_key};
use fleetdeck_agent::env_file::quote::quote;
use fleetdeck_proto::EnvUpdate;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    first: Vec<(Key, Value)>,
    then: Vec<(Key, Value)>,
    unset: Vec<Key>,
    /// How the first file is laid out around its assignments.
    layout: Layout,
}

#[derive(Debug, Arbitrary)]
struct Layout {
    crlf: bool,
    export: bool,
    comments: bool,
    no_final_newline: bool,
}

/// A key that passes `valid_key`: `[A-Za-z_][A-Za-z0-9_.]*`.
#[derive(Debug)]
struct Key(String);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        const FIRST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
        const REST: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.";
        let mut key = String::from(*u.choose(FIRST)? as char);
        for _ in 0..u.int_in_range(0..=6)? {
            key.push(*u.choose(REST)? as char);
        }
        Ok(Key(key))
    }
}

/// A value built from the pieces that trip up dotenv writers, mixed with arbitrary text.
#[derive(Debug)]
struct Value(String);

#[derive(Debug, Arbitrary)]
enum Piece {
    Text(String),
    Char(char),
    Single,
    Double,
    Backslash,
    Newline,
    Cr,
    Dollar,
    Brace,
    Hash,
    Space,
    Tab,
    Backtick,
    Bom,
    Equals,
    Unicode,
}

impl<'a> Arbitrary<'a> for Value {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut value = String::new();
        for _ in 0..u.int_in_range(0..=12)? {
            match Piece::arbitrary(u)? {
                Piece::Text(s) => value.push_str(&s),
                Piece::Char(c) => value.push(c),
                Piece::Single => value.push('\''),
                Piece::Double => value.push('"'),
                Piece::Backslash => value.push('\\'),
                Piece::Newline => value.push('\n'),
                Piece::Cr => value.push('\r'),
                Piece::Dollar => value.push('$'),
                Piece::Brace => value.push_str("${HOME}"),
                Piece::Hash => value.push('#'),
                Piece::Space => value.push(' '),
                Piece::Tab => value.push('\t'),
                Piece::Backtick => value.push('`'),
                Piece::Bom => value.push('\u{feff}'),
                Piece::Equals => value.push('='),
                Piece::Unicode => value.push_str("é€😀\u{a0}\u{2028}"),
            }
        }
        Ok(Value(value))
    }
}

fuzz_target!(|input: Input| {
    let first: BTreeMap<String, String> =
        input.first.into_iter().map(|(k, v)| (k.0, v.0)).collect();
    for key in first.keys() {
        assert!(valid_key(key), "{key:?}");
    }
    // Into an empty file.
    let Some(text) = write_new(&first) else {
        return;
    };
    assert_eq!(read(&text), first, "{text:?}");

    // Laid out as an operator might have written it, then parsed: same values.
    let eol = if input.layout.crlf { "\r\n" } else { "\n" };
    let mut laid = String::new();
    for (k, v) in &first {
        if input.layout.comments {
            laid.push_str(&format!("# {k} follows{eol}{eol}"));
        }
        let export = if input.layout.export { "export " } else { "" };
        laid.push_str(&format!(
            "{export}{k}={}{eol}",
            quote(v).expect("write_new checked")
        ));
    }
    if input.layout.no_final_newline && laid.ends_with(eol) {
        laid.truncate(laid.len() - eol.len());
    }
    assert_eq!(read(&laid), first, "{laid:?}");

    // Edited: some keys set (new or existing), others unset.
    let then: BTreeMap<String, String> = input.then.into_iter().map(|(k, v)| (k.0, v.0)).collect();
    let unset: Vec<String> = input
        .unset
        .into_iter()
        .map(|k| k.0)
        .filter(|k| !then.contains_key(k))
        .collect();
    let update = EnvUpdate {
        set: then.clone(),
        unset: unset.clone(),
        raw: None,
    };
    let writable = then.values().all(|v| quote(v).is_some());
    match apply(&laid, &update) {
        Ok(new) => {
            assert!(writable, "accepted a value quote() refuses");
            let mut want = first.clone();
            for k in &unset {
                want.remove(k);
            }
            want.extend(then);
            assert_eq!(read(&new), want, "{laid:?} -> {new:?}");
        }
        Err(e) => assert!(!writable, "refused {update:?} on {laid:?}: {e}"),
    }
});

/// `apply` on an empty file; `None` exactly when some value cannot be quoted.
fn write_new(values: &BTreeMap<String, String>) -> Option<String> {
    let update = EnvUpdate {
        set: values.clone(),
        ..EnvUpdate::default()
    };
    let writable = values.values().all(|v| quote(v).is_some());
    match apply("", &update) {
        Ok(text) => {
            assert!(writable, "accepted a value quote() refuses");
            Some(text)
        }
        Err(e) => {
            assert!(!writable, "refused {values:?}: {e}");
            None
        }
    }
}

fn read(text: &str) -> BTreeMap<String, String> {
    parse(text)
        .unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"))
        .into_iter()
        .map(|a| (a.key, a.value))
        .collect()
}
