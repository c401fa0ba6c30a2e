//! The fuzz target's checks (`fuzz/fuzz_targets/check.rs`) on stable Rust, under
//! proptest: arbitrary bytes, and valid report bodies with random mutations (the inputs
//! a coverage-guided fuzzer reaches quickly). CI runs a bounded number of cases; set
//! `WOLKVOX_FUZZ_CASES` for a long run, e.g. `WOLKVOX_FUZZ_CASES=1000000 cargo test
//! --release --test it fuzz::`. The coverage-guided target is `cargo +nightly fuzz run
//! decode` (see fuzz/Cargo.toml).

use proptest::prelude::*;

#[path = "../../fuzz/fuzz_targets/check.rs"]
mod check;

/// Cases per property: small by default so CI stays quick, any number on demand.
fn cases() -> u32 {
    std::env::var("WOLKVOX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// Valid bodies to mutate: the seeds the cargo-fuzz corpus starts from.
static SEEDS: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(read_seeds);

fn read_seeds() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

/// Tokens that steer mutations toward the decoder's corners.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\n",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"rp_id\":",
    b"\"data\":",
    b"\"cod_opc_menu\":\"",
    b"PULSE",
    b"hung_up",
    b"99:59:59",
    b"2026-02-30 25:61:61",
    &[0xff],
    &[0xc3],
    &[0xe2, 0x82],
    b"   \t\r\n",
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Token(usize, usize),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 1usize..300, 1usize..200).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn apply(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, body: &Vec<u8>| {
            if body.is_empty() {
                0
            } else {
                i % (body.len() + 1)
            }
        };
        match *m {
            Mutation::Flip(i, b) if !body.is_empty() => {
                let i = i % body.len();
                body[i] = b;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, b) => {
                let i = at(i, &body);
                body.insert(i, b);
            }
            Mutation::Token(i, t) => {
                let i = at(i, &body);
                body.splice(i..i, TOKENS[t].iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(i, &body);
                let end = (i + n).min(body.len());
                body.drain(i..end);
            }
            // A slice repeated: long strings, many rows, deep nesting.
            Mutation::Repeat(i, n, k) => {
                let i = at(i, &body);
                let end = (i + n).min(body.len());
                let piece: Vec<u8> = body[i..end].to_vec();
                for _ in 0..k {
                    body.splice(end..end, piece.iter().copied());
                }
            }
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check::body(&data);
        check::agrees(&data);
    }

    #[test]
    fn mutated_report_bodies(seed in 0usize..16, mutations in proptest::collection::vec(mutation(), 1..12)) {
        let body = apply(SEEDS[seed % SEEDS.len()].clone(), &mutations);
        check::body(&body);
        check::agrees(&body);
    }
}

/// The seeds themselves decode, so the mutations start from real answers.
#[test]
fn seeds_are_valid_answers() {
    for s in SEEDS.iter() {
        assert!(
            wolkvox_exporter::wolkvox::row::decode(s).is_ok(),
            "{}",
            String::from_utf8_lossy(s)
        );
    }
}
