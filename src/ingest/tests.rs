use super::*;
use crate::calls::{CallKey, Calls};
use crate::ledger::Ledger;

fn calls() -> Calls {
    Calls::with_key(CallKey::from_u128(7))
}
use jiff::tz::TimeZone;

fn q() -> Query {
    let r = Range::new(
        "2026-11-27T15:00:00Z".parse().unwrap(),
        "2026-11-27T15:05:00Z".parse().unwrap(),
    );
    window::query_for(r, &TimeZone::get("America/Bogota").unwrap())
}

fn bogota() -> TimeZone {
    TimeZone::get("America/Bogota").unwrap()
}

fn row_json(date: &str, conn: &str) -> String {
    format!(
        r#"{{"rp_id":"1","rp_name":"Menú","cod_opc_menu":"1","dn_transfer":"","date":"{date}","result":"ok","ani":"","time":"5","customer_id":"","conn_id":"{conn}"}}"#
    )
}

fn envelope(rows: &[String]) -> String {
    format!(
        r#"{{"code":200,"error":null,"msg":"{} records were found","data":[{}]}}"#,
        rows.len(),
        rows.join(",")
    )
}

fn body(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"rp_id":"1","rp_name":"A","cod_opc_menu":"1","dn_transfer":"","date":"2026-11-27 10:00:00","result":"ok","ani":"","time":"5","customer_id":"","conn_id":"{i}"}}"#))
        .collect();
    format!(
        r#"{{"code":200,"error":null,"msg":"{n} records were found","data":[{}]}}"#,
        rows.join(",")
    )
}

#[test]
fn applies_new_rows_and_counts_copies_as_duplicates() {
    let mut ledger = Ledger::new();
    let mut batch = ledger.begin();
    let mut t = Totals::default();
    let b = body(3);
    let got = ingest(
        b.as_bytes(),
        &q(),
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &Limits::default(),
        &[5.0],
    )
    .unwrap();
    assert_eq!(
        got,
        Ingested::Applied {
            rows: 3,
            new: 3,
            capped: false
        }
    );
    let got = ingest(
        b.as_bytes(),
        &q(),
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &Limits::default(),
        &[5.0],
    )
    .unwrap();
    assert_eq!(
        got,
        Ingested::Applied {
            rows: 3,
            new: 0,
            capped: false
        }
    );
    assert_eq!((t.rows, t.duplicates), (3, 3));
}

#[test]
fn at_the_cap_asks_for_halves_and_applies_nothing() {
    let mut ledger = Ledger::new();
    let mut batch = ledger.begin();
    let mut t = Totals::default();
    let b = body(ROW_CAP);
    match ingest(
        b.as_bytes(),
        &q(),
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &Limits::default(),
        &[5.0],
    )
    .unwrap()
    {
        Ingested::Split(a, c) => {
            assert_eq!(a.start, q().range.start);
            assert_eq!(a.end, c.start);
            assert_eq!(c.end, q().range.end);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t, Totals::default());
}

/// 300 rows a second from 10:00:00, and two extra copies of a row of second 199
/// placed so the cut at 60,000 rows falls between its copies.
fn over_the_cap() -> Vec<(String, String)> {
    let at = |i: usize| format!("2026-11-27 10:{:02}:{:02}", i / 300 / 60, i / 300 % 60);
    let mut rows: Vec<(String, String)> = (0..63_000).map(|i| (at(i), format!("c{i}"))).collect();
    let dup = rows[59_998].clone();
    rows.insert(59_999, dup.clone());
    rows.insert(59_999, dup);
    rows
}

/// What the API answers for wall times from `from` on: rows in date order, cut.
fn answer(all: &[(String, String)], from: &str) -> String {
    let rows: Vec<String> = all
        .iter()
        .filter(|(d, _)| d.as_str() >= from)
        .take(ROW_CAP)
        .map(|(d, c)| row_json(d, c))
        .collect();
    envelope(&rows)
}

#[test]
fn at_the_cap_in_date_order_keeps_what_is_complete_and_asks_from_the_last_second() {
    let all = over_the_cap();
    let mut ledger = Ledger::new();
    let mut batch = ledger.begin();
    let mut t = Totals::default();
    let limits = Limits::default();
    let first = answer(&all, "");
    let got = ingest(
        first.as_bytes(),
        &q(),
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &limits,
        &[5.0],
    )
    .unwrap();
    let Ingested::Continue {
        rows,
        kept,
        new,
        rest,
    } = got
    else {
        panic!("{got:?}");
    };
    // Second 199 (10:03:19) is the last one: its rows wait for the next answer.
    assert_eq!((rows, kept, new), (ROW_CAP, 59_700, 59_700));
    assert_eq!(
        rest.date_ini,
        jiff::civil::date(2026, 11, 27).at(10, 3, 19, 0)
    );
    assert_eq!(rest.date_end, q().date_end);
    assert_eq!(rest.range.start, "2026-11-27T15:03:19Z".parse().unwrap());
    assert_eq!(rest.range.end, q().range.end);
    assert_eq!(t.rows, 59_700);
    // The rest: every copy of the duplicate, all of second 199 and after.
    let second = answer(&all, "2026-11-27 10:03:19");
    let got = ingest(
        second.as_bytes(),
        &rest,
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &limits,
        &[5.0],
    )
    .unwrap();
    assert_eq!(
        got,
        Ingested::Applied {
            rows: 63_002 - 59_700,
            new: 63_002 - 59_700,
            capped: false
        }
    );
    // Each row once, each of the three copies once; nothing seen twice.
    assert_eq!((t.rows, t.duplicates), (63_002, 0));
    // Had the re-asked range started earlier, the kept rows would not count again.
    let again = answer(&all, "2026-11-27 10:03:00");
    ingest(
        again.as_bytes(),
        &rest,
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &limits,
        &[5.0],
    )
    .unwrap();
    assert_eq!(t.rows, 63_002);
}

#[test]
fn at_the_cap_out_of_order_or_undated_halves_and_applies_nothing() {
    let all = over_the_cap();
    let mut rows: Vec<String> = all[..ROW_CAP].iter().map(|(d, c)| row_json(d, c)).collect();
    rows.swap(10, 20_000);
    let mut undated: Vec<String> = all[..ROW_CAP].iter().map(|(d, c)| row_json(d, c)).collect();
    undated[5] = row_json("yesterday", "x");
    for b in [envelope(&rows), envelope(&undated)] {
        let mut ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut t = Totals::default();
        let got = ingest(
            b.as_bytes(),
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &mut calls(),
            &Limits::default(),
            &[5.0],
        )
        .unwrap();
        assert!(matches!(got, Ingested::Split(..)), "{got:?}");
        assert_eq!(t, Totals::default());
    }
}

#[test]
fn continuation_starts_at_the_first_pass_of_a_folded_second() {
    let ny = TimeZone::get("America/New_York").unwrap();
    // 2026-11-01: 01:00-02:00 happens twice in New York.
    let r = Range::new(
        "2026-11-01T04:30:00Z".parse().unwrap(),
        "2026-11-01T07:00:00Z".parse().unwrap(),
    );
    let q = window::query_for(r, &ny);
    let d = |h, m| Some(jiff::civil::date(2026, 11, 1).at(h, m, 0, 0));
    let (kept, rest) = continuation([d(0, 40), d(1, 10), d(1, 30), d(1, 30)], &q, &ny).unwrap();
    assert_eq!(kept, 2);
    assert_eq!(rest.range.start, "2026-11-01T05:30:00Z".parse().unwrap());
    assert_eq!(rest.date_ini, d(1, 30).unwrap());
    assert_eq!(rest.date_end, q.date_end);
    // One second only, or nothing to go on: halve instead.
    assert_eq!(continuation([d(0, 30), d(0, 30)], &q, &ny), None);
    assert_eq!(continuation([d(1, 10), None], &q, &ny), None);
    assert_eq!(continuation([d(1, 10), d(0, 50)], &q, &ny), None);

    // 2026-03-08: 02:00-03:00 never happens in New York. A cut answer ending on a
    // skipped wall time names no instant to continue from.
    let r = Range::new(
        "2026-03-08T05:00:00Z".parse().unwrap(),
        "2026-03-08T09:00:00Z".parse().unwrap(),
    );
    let q = window::query_for(r, &ny);
    let d = |h, m| Some(jiff::civil::date(2026, 3, 8).at(h, m, 0, 0));
    assert_eq!(continuation([d(1, 10), d(2, 30)], &q, &ny), None);
    let (kept, rest) = continuation([d(1, 10), d(2, 30), d(3, 5)], &q, &ny).unwrap();
    assert_eq!(kept, 2);
    assert_eq!(rest.range.start, "2026-03-08T07:05:00Z".parse().unwrap());
}

/// The lean path reads, de-duplicates and applies exactly as the rows do.
#[test]
fn ingest_agrees_with_rows_of_and_apply_rows() {
    let mut b = br#"{"msg":"x","data":[
            {"rp_id":7,"rp_name":"Men\u00fa \"P\"","cod_opc_menu":" pulse ","dn_transfer":null,"date":"2026-11-27 10:00:00","result":"Hung_Up","ani":"300","time":"00:01:05","customer_id":"","conn_id":"c1","extra":{"x":1}},
            {"rp_id":7,"rp_name":"Men\u00fa \"P\"","cod_opc_menu":" pulse ","dn_transfer":null,"date":"2026-11-27 10:00:00","result":"Hung_Up","ani":"300","time":"00:01:05","customer_id":"","conn_id":"c1","extra":{"x":1}},
            {"rp_name":["odd"],"time":"n/a","date":"bad"},
            {"rp_id":"","rp_name":"  A  ","cod_opc_menu":"2","dn_transfer":"3001","date":"20261127100001","result":"ok","time":4.5,"conn_id":"c2"},
            {"rp_id":"2","rp_name":"B","cod_opc_menu":"3","dn_transfer":"3002","date":"2026112710","result":"OK","time":"7","conn_id":"c3"},
            {"rp_id":"3","rp_name":"C"#
        .to_vec();
    b.push(0xff);
    b.extend_from_slice(br#"","cod_opc_menu":"","time":"1","conn_id":"c4"}]}"#);
    let limits = Limits {
        routing_points: 3,
        options_per_routing_point: 1,
        transfers_per_routing_point: 1,
    };
    let (mut lean, mut plain) = (Totals::default(), Totals::default());
    let (mut l1, mut l2) = (Ledger::new(), Ledger::new());
    let (mut b1, mut b2) = (l1.begin(), l2.begin());
    let (mut c1, mut c2) = (calls(), calls());
    for _ in 0..2 {
        ingest(
            &b,
            &q(),
            &bogota(),
            &mut b1,
            &mut lean,
            &mut c1,
            &limits,
            &[5.0, 60.0],
        )
        .unwrap();
        let rows = rows_of(&b).unwrap();
        apply_rows(
            &rows,
            &q(),
            &mut b2,
            &mut plain,
            &mut c2,
            &limits,
            &[5.0, 60.0],
        );
    }
    assert_eq!(lean, plain);
    assert_eq!((lean.rows, lean.duplicates), (6, 6));
    drop((b1, b2));
    assert_eq!(l1, l2);
    // The same calls, with the same first and last dates.
    let open = |c: &Calls| {
        let mut v: Vec<_> = c.open().map(|(id, call)| (*id, call.clone())).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    };
    assert_eq!(open(&c1).len(), 4);
    assert_eq!(open(&c1), open(&c2));
}

#[test]
fn ingest_reads_envelopes_as_rows_of_does() {
    let mut ledger = Ledger::new();
    let mut batch = ledger.begin();
    let mut t = Totals::default();
    let mut go = |b: &[u8]| {
        ingest(
            b,
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &mut calls(),
            &Limits::default(),
            &[5.0],
        )
    };
    let none = Ingested::Applied {
        rows: 0,
        new: 0,
        capped: false,
    };
    assert_eq!(go(b"").unwrap(), none);
    assert_eq!(
        go(br#"{"code":404,"msg":"Validate dates entered","data":null}"#).unwrap(),
        none
    );
    assert_eq!(go(br#"{"code":404,"data":[{"rp_id":"1"}]}"#).unwrap(), none);
    assert_eq!(go(br#"{"code":200,"data":null}"#).unwrap(), none);
    let e = go(br#"{"code":403,"msg":"TOKEN LIMIT EXCEEDED","data":[]}"#).unwrap_err();
    assert_eq!(e.reason, Reason::TokenLimit);
    for bad in [
        &b"<html>"[..],
        br#"{"code":200,"data":"nope"}"#,
        br#"{"code":200,"data":[{"rp_id":"1"#,
    ] {
        let want = rows_of(bad).unwrap_err();
        let got = go(bad).unwrap_err();
        assert_eq!((got.reason, got.detail), (want.reason, want.detail));
    }
}

#[test]
fn envelopes() {
    assert!(rows_of(b"").unwrap().is_empty());
    assert!(
        rows_of(br#"{"code":404,"msg":"Validate dates entered","data":null}"#)
            .unwrap()
            .is_empty()
    );
    assert!(rows_of(br#"{"code":200,"data":null}"#).unwrap().is_empty());
    let e = rows_of(br#"{"code":403,"msg":"TOKEN LIMIT EXCEEDED","data":[]}"#).unwrap_err();
    assert_eq!(e.reason, Reason::TokenLimit);
    assert_eq!(rows_of(b"<html>").unwrap_err().reason, Reason::Decode);
}

/// The envelope as the vendor's own samples write it: `code` as a string, `msg`
/// with a leading space; and a body behind a UTF-8 byte order mark.
#[test]
fn vendor_envelopes_read_as_rows() {
    let vendor = br#"{"code": "200", "error": null, "msg": " 3 records were found", "data": [
            {"rp_id": "1", "rp_name": "A", "cod_opc_menu": "1", "dn_transfer": "", "date": "2026-04-01 10:00:00", "result": "ok", "ani": "3001234567", "time": "12", "customer_id": "", "conn_id": "c1"},
            {"rp_id": "1", "rp_name": "A", "cod_opc_menu": "PULSE", "dn_transfer": "", "date": "2026-04-01 10:00:01", "result": "hung up", "ani": "3001234567", "time": "3", "customer_id": "", "conn_id": "c2"},
            {"rp_id": "2", "rp_name": "B", "cod_opc_menu": "", "dn_transfer": "3001", "date": "2026-04-01 10:00:02", "result": "ok", "ani": "3001234567", "time": "0:45", "customer_id": "", "conn_id": "c3"}
        ]}"#;
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(vendor);
    for (name, body) in [("string code", &vendor[..]), ("byte order mark", &bom[..])] {
        assert_eq!(rows_of(body).expect(name).len(), 3, "{name}");
        let mut ledger = Ledger::new();
        let mut batch = ledger.begin();
        let mut t = Totals::default();
        let got = ingest(
            body,
            &q(),
            &bogota(),
            &mut batch,
            &mut t,
            &mut calls(),
            &Limits::default(),
            &[5.0],
        )
        .expect(name);
        assert_eq!(
            got,
            Ingested::Applied {
                rows: 3,
                new: 3,
                capped: false
            },
            "{name}"
        );
        assert_eq!(t.rows, 3, "{name}");
    }
    // A string code other than 200 is classified as a number would be.
    let e = rows_of(br#"{"code":"403","msg":"TOKEN LIMIT EXCEEDED","data":[]}"#).unwrap_err();
    assert_eq!(e.reason, Reason::TokenLimit);
    assert!(
        rows_of(br#"{"code":" 404 ","msg":"Validate dates entered","data":null}"#)
            .unwrap()
            .is_empty()
    );
    // A code that is no number is not a report.
    let e = rows_of(br#"{"code":"OK","data":[]}"#).unwrap_err();
    assert_eq!(e.reason, Reason::Decode);
    assert!(e.detail.contains("code"), "{}", e.detail);
}

/// The decoder's two paths (valid UTF-8 read as text; invalid UTF-8 replaced first)
/// keep what a row says and report a broken body the same way.
#[test]
fn decode_errors_read_the_same_on_both_paths() {
    let row = |name: &[u8]| {
        let mut b = br#"{"code":200,"data":[{"rp_id":"1","rp_name":""#.to_vec();
        b.extend_from_slice(name);
        b.extend_from_slice(br#"","date":"2026-04-01 10:00:00","result":"ok","conn_id":"c1"}]}"#);
        b
    };
    // Valid and invalid UTF-8 in a label: both read, the second with U+FFFD.
    assert_eq!(rows_of(&row("Menú".as_bytes())).unwrap().len(), 1);
    assert_eq!(rows_of(&row(b"Men\xFA")).unwrap().len(), 1);
    // Cut off, with and without invalid UTF-8 before the cut: the same error, at the
    // same column of the text as read (U+FFFD takes 3 bytes where 0xFA took one).
    let mut cut = row("Men\u{FFFD}".as_bytes());
    cut.truncate(60);
    let mut cut_invalid = row(b"Men\xFA");
    cut_invalid.truncate(58);
    let (a, b) = (
        rows_of(&cut).unwrap_err(),
        rows_of(&cut_invalid).unwrap_err(),
    );
    assert_eq!((a.reason, b.reason), (Reason::Decode, Reason::Decode));
    assert_eq!(a.detail, b.detail);
    assert_eq!(
        a.detail,
        "invalid report answer: EOF while parsing a string at line 1 column 60"
    );
}

/// Found by the fuzzer: an envelope with code 404 and rows in `data` has no rows, on the
/// simple path (`rows_of`, which `backfill` uses) as in `ingest`.
#[test]
fn a_404_envelope_has_no_rows_whatever_its_data() {
    let body = br#"{"code":404,"msg":"4 records were found","data":[{"rp_id":"1","rp_name":"A","date":"2026-04-01 10:00:00","result":"ok","conn_id":"c1"}]}"#;
    assert!(rows_of(body).unwrap().is_empty());
    let mut ledger = Ledger::new();
    let mut batch = ledger.begin();
    let mut t = Totals::default();
    let got = ingest(
        body,
        &q(),
        &bogota(),
        &mut batch,
        &mut t,
        &mut calls(),
        &Limits::default(),
        &[5.0],
    )
    .unwrap();
    assert_eq!(
        got,
        Ingested::Applied {
            rows: 0,
            new: 0,
            capped: false
        }
    );
    assert_eq!(t.rows, 0);
}
