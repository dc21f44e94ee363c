//! OpenTelemetry metadata (rule 1).

use super::*;

// ---------------------------------------------------------------------------------------------
// rule 1: OpenTelemetry metadata

#[test]
fn otlp_severity_trace_span() {
    let trace: Vec<u8> = (0x01..=0x10).collect(); // low 64 bits: 0x090a0b0c0d0e0f10
    let span = vec![1, 2, 3, 4, 5, 6, 7, 8];
    let meta = obj(&[(
        "otlp",
        obj(&[
            ("severity_number", M::UInt(17)),
            ("severity_text", s("ERROR")),
            ("trace_id", M::Bin(trace)),
            ("span_id", M::Bin(span)),
        ]),
    )]);
    let c = cfg(&[("json_date_key", "off")]);
    let o = map_meta(&c, T0, &meta, &obj(&[("log", s("payment failed"))]));
    assert_eq!(
        o,
        json!({
            "status": "ERROR",
            "dd.trace_id": 0x090a_0b0c_0d0e_0f10u64.to_string(),
            "dd.span_id": "72623859790382856",
            "message": "payment failed",
        })
    );
    // The record's own attributes win.
    let o = map_meta(
        &c,
        T0,
        &meta,
        &obj(&[
            ("status", s("info")),
            ("dd.trace_id", s("1")),
            ("dd.span_id", s("2")),
        ]),
    );
    assert_eq!(
        o,
        json!({"status": "info", "dd.trace_id": "1", "dd.span_id": "2"})
    );
    // Ids given as hex text: 32 digits (low half used) and 16 digits.
    let meta = obj(&[(
        "otlp",
        obj(&[
            ("trace_id", s("5b8efff798038103d269b633813fc60c")),
            ("span_id", s("eee19b7ec3c1b174")),
        ]),
    )]);
    let o = map_meta(&c, T0, &meta, &obj(&[]));
    assert_eq!(
        o,
        json!({"dd.trace_id": "15161849952847513100", "dd.span_id": "17213210219539181940"})
    );
    // All-zero or malformed ids are left out; no otlp map, nothing added.
    let meta = obj(&[(
        "otlp",
        obj(&[
            ("trace_id", M::Bin(vec![0; 16])),
            ("span_id", M::Bin(vec![1; 5])),
            ("severity_text", M::UInt(3)),
        ]),
    )]);
    assert_eq!(map_meta(&c, T0, &meta, &obj(&[])), json!({}));
    assert_eq!(
        map_meta(&c, T0, &obj(&[("other", M::UInt(1))]), &obj(&[])),
        json!({})
    );
}

#[test]
fn otlp_fixture_record() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fb-4.2.8-otlp-groups.msgpack"
    );
    let data = std::fs::read(path).unwrap();
    let recs: Vec<Record> = decode::chunk(&data)
        .filter_map(|i| match i {
            decode::Item::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(recs.len(), 1);
    let mut out = Vec::new();
    let m = Mapper::new(&cfg(&[]));
    assert_eq!(
        m.write(&recs[0], "v1_logs", &mut Scratch::default(), &mut out),
        Mapped::Written {
            truncated: false,
            partial: false
        }
    );
    let o = parse_checked(&out);
    assert_eq!(o["status"], "ERROR");
    assert_eq!(o["dd.trace_id"], "15161849952847513100");
    assert_eq!(o["dd.span_id"], "17213210219539181940");
    assert_eq!(o["message"], "payment failed");
}
