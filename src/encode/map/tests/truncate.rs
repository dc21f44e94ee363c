//! The 1 MB limit.

use super::*;

// ---------------------------------------------------------------------------------------------
// the 1 MB limit

/// Maps `{log: text, ...extra}` and checks the truncation contract.
fn check_truncated(text: &str, extra: &[(&str, M)]) {
    let mut pairs = vec![("log", s(text))];
    pairs.extend(extra.iter().cloned());
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&pairs));
    assert_eq!(
        r,
        Mapped::Written {
            truncated: true,
            partial: false
        }
    );
    assert!(out.len() <= MAX_LOG_BYTES, "{}", out.len());
    // Cut no more than one escape or character past what was needed.
    assert!(out.len() > MAX_LOG_BYTES - 8, "{}", out.len());
    let o = parse_checked(&out);
    let msg = o["message"].as_str().unwrap();
    let kept = msg
        .strip_suffix(TRUNCATION_MARKER)
        .expect("ends with the marker");
    assert!(
        text.starts_with(kept),
        "the kept text is a prefix of the message"
    );
    assert!(kept.len() > 100_000);
    for (k, v) in extra {
        assert_eq!(o[k], parse_checked(&enc_json(v)), "{k} kept");
    }
}

/// What the mapper writes for a simple value (for comparing extra attributes).
fn enc_json(v: &M) -> Vec<u8> {
    let (_, out) = map_raw(
        &cfg(&[("json_date_key", "off")]),
        T0,
        &[],
        &obj(&[("v", v.clone())]),
    );
    let o = parse_checked(&out);
    serde_json::to_vec(&o["v"]).unwrap()
}

#[test]
fn message_over_1mb_truncated_with_marker() {
    // Plain ASCII, as in the fixtures.
    check_truncated(&"x".repeat(2_000_000), &[("source", s("stdout"))]);
    // Multi-byte text: the cut must land on a character boundary whatever the offset.
    for shift in 0..4 {
        let text = format!("{}{}", "a".repeat(shift), "é日😀".repeat(150_000));
        check_truncated(&text, &[]);
    }
    // Escapes: `"` and `\n` are two bytes of JSON, control characters six.
    for shift in 0..6 {
        let text = format!("{}{}", "a".repeat(shift), "\"\n\u{1}\\é".repeat(120_000));
        check_truncated(&text, &[("other", M::UInt(1))]);
    }
    // The message written under its own name (not renamed) is cut the same way.
    let (r, out) = map_raw(
        &cfg(&[]),
        T0,
        &[],
        &obj(&[("message", s(&"\"".repeat(600_000)))]),
    );
    assert_eq!(
        r,
        Mapped::Written {
            truncated: true,
            partial: false
        }
    );
    assert!(out.len() <= MAX_LOG_BYTES);
    let o = parse_checked(&out);
    assert!(o["message"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
    // Exactly at the limit: not cut.
    let overhead = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(""))])).1.len();
    let text = "y".repeat(MAX_LOG_BYTES - overhead);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(&text))]));
    assert_eq!(
        r,
        Mapped::Written {
            truncated: false,
            partial: false
        }
    );
    assert_eq!(out.len(), MAX_LOG_BYTES);
    let text = "y".repeat(MAX_LOG_BYTES - overhead + 1);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(&text))]));
    assert_eq!(
        r,
        Mapped::Written {
            truncated: true,
            partial: false
        }
    );
    assert!(out.len() <= MAX_LOG_BYTES);
}

#[test]
fn message_over_1mb_written_in_part_keeps_the_same_text() {
    // Only the first MAX_LOG_BYTES bytes of a longer message are escaped; the kept text must
    // be the same as if all of it had been, whatever sits at that offset: a multi-byte
    // character, an escape, or bytes that are not UTF-8 (sent as bin). The 14 shifts put
    // the offset on each byte of those in turn.
    for shift in 0..14 {
        let mut text = vec![b'a'; MAX_LOG_BYTES - shift];
        text.extend_from_slice("日\\\"😀".as_bytes());
        text.extend_from_slice(b"\xff\xc3(\xe6\x97");
        text.extend(std::iter::repeat_n(b'b', 300_000));
        let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", M::Bin(text.clone()))]));
        assert_eq!(
            r,
            Mapped::Written {
                truncated: true,
                partial: false
            }
        );
        assert!(out.len() <= MAX_LOG_BYTES && out.len() > MAX_LOG_BYTES - 8);
        let o = parse_checked(&out);
        let kept = o["message"].as_str().unwrap();
        let kept = kept.strip_suffix(TRUNCATION_MARKER).unwrap();
        assert!(
            String::from_utf8_lossy(&text).starts_with(kept),
            "shift {shift}"
        );
    }
}

#[test]
fn too_large_object_reports_its_whole_size() {
    // The message is written only in part, but the size reported is the whole object's.
    let other = ("other", M::Arr(vec![M::UInt(1_000_000); 200_000]));
    let size =
        |log: &str| match map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(log)), other.clone()])).0 {
            Mapped::TooLarge { bytes } => bytes,
            r => panic!("{r:?}"),
        };
    // Each quote is two bytes of JSON, and é stays two bytes.
    let long = format!("{}é{}", "\"".repeat(1_100_000), "é".repeat(10));
    assert_eq!(size(&long), size("") + 2_200_000 + 22);
}

#[test]
fn object_too_large_without_message_is_reported() {
    let big = "z".repeat(1_200_000);
    for body in [
        // A key cannot be cut.
        M::Map(vec![(s(&big), M::UInt(1))]),
        obj(&[("m", M::Map(vec![(s(&big), s("v"))]))]),
        // Many small values.
        obj(&[("n", M::Arr(vec![M::UInt(1_000_000); 200_000]))]),
    ] {
        let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
        match r {
            Mapped::TooLarge { bytes } => assert!(bytes > MAX_LOG_BYTES),
            other => panic!("{other:?}"),
        }
        assert!(out.is_empty(), "nothing appended");
    }
}

#[test]
fn largest_other_strings_cut_after_the_message() {
    // No message: the largest top-level string is cut.
    let big = "z".repeat(1_200_000);
    let (r, out) = map_raw(
        &cfg(&[]),
        T0,
        &[],
        &obj(&[("other", s(&big)), ("small", s("keep"))]),
    );
    assert_eq!(
        r,
        Mapped::Written {
            truncated: true,
            partial: false
        }
    );
    assert!(out.len() <= MAX_LOG_BYTES && out.len() > MAX_LOG_BYTES - 8);
    let o = parse_checked(&out);
    assert!(o["other"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
    assert_eq!(o["small"], "keep");
    // A message too short to help: the largest other string goes first, the next only
    // if still needed.
    let body = obj(&[
        ("log", s("short")),
        ("a", s(&"a".repeat(500_000))),
        ("b", s(&"b\"".repeat(350_000))),
        ("c", s(&"c".repeat(100_000))),
    ]);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
    assert_eq!(
        r,
        Mapped::Written {
            truncated: true,
            partial: false
        }
    );
    assert!(out.len() <= MAX_LOG_BYTES, "{}", out.len());
    let o = parse_checked(&out);
    assert_eq!(o["message"], "short");
    assert_eq!(o["a"].as_str().unwrap().len(), 500_000);
    assert_eq!(o["c"].as_str().unwrap().len(), 100_000);
    let b = o["b"].as_str().unwrap();
    let kept = b.strip_suffix(TRUNCATION_MARKER).unwrap();
    assert!("b\"".repeat(350_000).starts_with(kept));
    // The message is cut before anything else, even when another string is larger.
    let body = obj(&[
        ("log", s(&"m".repeat(600_000))),
        ("a", s(&"a".repeat(700_000))),
    ]);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
    assert_eq!(
        r,
        Mapped::Written {
            truncated: true,
            partial: false
        }
    );
    let o = parse_checked(&out);
    assert!(o["message"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
    assert_eq!(o["a"].as_str().unwrap().len(), 700_000);
}

#[test]
fn nested_strings_are_cut_to_fit() {
    let big = "z".repeat(1_200_000);
    let half = "h\"".repeat(300_000);
    for (body, path) in [
        (obj(&[("other", M::Arr(vec![s(&big)]))]), "/other/0"),
        (
            obj(&[("log", s("short")), ("other", obj(&[("x", s(&big))]))]),
            "/other/x",
        ),
        // A message that is not a string: the strings inside it.
        (
            obj(&[("log", M::Arr(vec![M::UInt(1), s(&big)]))]),
            "/message/1",
        ),
        // Deep, beside another large nested string that is left whole.
        (
            obj(&[
                ("a", obj(&[("b", M::Arr(vec![obj(&[("c", s(&big))])]))])),
                ("d", M::Arr(vec![s(&half)])),
            ]),
            "/a/b/0/c",
        ),
    ] {
        let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
        assert_eq!(
            r,
            Mapped::Written {
                truncated: true,
                partial: false
            },
            "{path}"
        );
        assert!(out.len() <= MAX_LOG_BYTES && out.len() > MAX_LOG_BYTES - 8);
        let o = parse_checked(&out);
        let cut = o.pointer(path).and_then(J::as_str).expect(path);
        let kept = cut.strip_suffix(TRUNCATION_MARKER).expect("marker");
        assert!(big.starts_with(kept), "{path}");
        if let Some(d) = o.pointer("/d/0") {
            assert_eq!(d.as_str(), Some(half.as_str()));
        }
    }
}
