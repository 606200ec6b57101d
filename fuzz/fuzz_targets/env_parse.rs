//! Arbitrary bytes as a `.env` file: the parser never panics, its spans are sound, and whatever
//! parses survives being written back: `parse(write(parse(x))) == parse(x)`, both through
//! `quote` (the writer of one value) and through `apply` (the edit the API performs).

#![no_main]

use std::collections::BTreeMap;

use fleetdeck_agent::env_file::parse::{parse, parse_lenient, Assignment};
use fleetdeck_agent::env_file::quote::quote;
use fleetdeck_agent::env_file::{apply, EnvError};
use fleetdeck_proto::EnvUpdate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The agent reads a file that is not UTF-8 lossily for display, and parses it leniently.
    let lossy = String::from_utf8_lossy(data);
    check_spans(&lossy, &parse_lenient(&lossy));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = parse(text) else {
        return;
    };
    check_spans(text, &doc);
    assert_eq!(
        doc,
        parse_lenient(text),
        "strict and lenient agree on a valid file"
    );

    // Written afresh, one `KEY=quoted` line each, the document reads back the same.
    let writable: Vec<&Assignment> = doc.iter().filter(|a| quote(&a.value).is_some()).collect();
    let written: String = writable
        .iter()
        .map(|a| format!("{}={}\n", a.key, quote(&a.value).expect("filtered")))
        .collect();
    let reread = parse(&written).unwrap_or_else(|e| panic!("written file {written:?}: {e}"));
    assert_eq!(
        pairs(writable.iter().copied()),
        pairs(reread.iter()),
        "{written:?}"
    );

    // Edited in place: setting every key to its current value, then to a new one, and unsetting
    // one, each read back as asked, and the untouched lines stay byte for byte.
    let current = values(&doc);
    let same = EnvUpdate {
        set: current
            .iter()
            .filter(|(_, v)| quote(v).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..EnvUpdate::default()
    };
    let new = apply(text, &same).unwrap_or_else(|e| panic!("set to same {text:?}: {e}"));
    assert_eq!(values(&parse(&new).expect("apply checked it")), current);
    if let Some(key) = current.keys().next() {
        let set = EnvUpdate {
            set: BTreeMap::from([(key.clone(), "new value # with 'quotes'\n".to_owned())]),
            ..EnvUpdate::default()
        };
        let new = apply(text, &set).unwrap_or_else(|e| panic!("set {key} in {text:?}: {e}"));
        let mut want = current.clone();
        want.insert(key.clone(), "new value # with 'quotes'\n".to_owned());
        assert_eq!(values(&parse(&new).expect("apply checked it")), want);
        let last = doc
            .iter()
            .rev()
            .find(|a| &a.key == key)
            .expect("key is in doc");
        let tail = text.len() - last.value_span.end;
        assert_eq!(text[..last.value_span.start], new[..last.value_span.start]);
        assert_eq!(text[last.value_span.end..], new[new.len() - tail..]);

        let unset = EnvUpdate {
            unset: vec![key.clone()],
            ..EnvUpdate::default()
        };
        let new = apply(text, &unset).unwrap_or_else(|e| panic!("unset {key} in {text:?}: {e}"));
        want.remove(key);
        assert_eq!(values(&parse(&new).expect("apply checked it")), want);
    }
    // A raw write of the same text is accepted as is.
    let raw = EnvUpdate {
        raw: Some(text.to_owned()),
        ..EnvUpdate::default()
    };
    match apply("", &raw) {
        Ok(new) => assert_eq!(new, text),
        Err(EnvError::Invalid(e)) => panic!("raw write of a valid file refused: {e}"),
        Err(e) => panic!("raw write: {e}"),
    }
});

/// Spans lie inside the text on character boundaries, in order, with the value inside its
/// statement; `apply` replaces them, so a bad span would panic or corrupt a file.
fn check_spans(text: &str, doc: &[Assignment]) {
    let mut prev_end = 0;
    let mut prev_line = 0;
    for a in doc {
        let (s, v) = (&a.statement, &a.value_span);
        assert!(
            s.start >= prev_end && s.start <= s.end && s.end <= text.len(),
            "{a:?}"
        );
        assert!(
            s.start <= v.start && v.start <= v.end && v.end <= s.end,
            "{a:?}"
        );
        for i in [s.start, s.end, v.start, v.end] {
            assert!(text.is_char_boundary(i), "{a:?}");
        }
        assert!(a.line > prev_line, "{a:?}");
        let line = text[..s.start].matches('\n').count() + 1;
        assert_eq!(a.line as usize, line, "{a:?}");
        prev_end = s.end;
        prev_line = a.line;
    }
}

fn pairs<'a>(doc: impl Iterator<Item = &'a Assignment>) -> Vec<(&'a str, &'a str)> {
    doc.map(|a| (a.key.as_str(), a.value.as_str())).collect()
}

fn values(doc: &[Assignment]) -> BTreeMap<String, String> {
    doc.iter()
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect()
}
