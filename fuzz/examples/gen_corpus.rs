//! Writes the committed seed corpus, fuzz/corpus/<target>/<name>, from the cases below:
//! every malformed input of shared/reference/libfcgi.md §2-§3 and the protocol items of the
//! specification checklist, so fuzzing starts from the edges that matter. Reproducible:
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus [-- OUT_DIR]
//!
//! `engine` seeds are knobs (fcgi_fuzz::driver) followed by the bytes a peer sends; each case
//! is written twice, with a lenient and with a tight configuration.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use fcgi_fuzz::driver::{DEFAULT_KNOBS, TIGHT_KNOBS};
use fcgi_runtime_protocol::record::{mgmt, push_nv_pair, rtype, Header};

/// A record with explicit padding (filled with 0xee: receivers must skip, not read, it).
fn rec(out: &mut Vec<u8>, t: u8, id: u16, content: &[u8], pad: u8) {
    out.extend_from_slice(&Header::encode(t, id, content.len() as u16, pad));
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0xee, pad as usize));
}

/// A record padded to 8 bytes.
fn r(out: &mut Vec<u8>, t: u8, id: u16, content: &[u8]) {
    rec(out, t, id, content, ((8 - content.len() % 8) % 8) as u8);
}

fn begin(out: &mut Vec<u8>, id: u16, role: u16, keep: bool) {
    let b = role.to_be_bytes();
    r(
        out,
        rtype::BEGIN_REQUEST,
        id,
        &[b[0], b[1], u8::from(keep), 0, 0, 0, 0, 0],
    );
}

fn pairs(list: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (n, val) in list {
        push_nv_pair(&mut v, n, val);
    }
    v
}

fn cgi_params() -> Vec<u8> {
    pairs(&[
        (b"SCRIPT_FILENAME", b"/srv/www/index.php"),
        (b"REQUEST_METHOD", b"POST"),
        (b"CONTENT_LENGTH", b"5"),
        (b"QUERY_STRING", b"a=1&b=2"),
        (b"HTTP_COOKIE", &[b'c'; 200]),
    ])
}

/// A whole request on `id`: BEGIN, PARAMS, STDIN "hello" (and DATA for a Filter).
fn request(out: &mut Vec<u8>, id: u16, role: u16, keep: bool) {
    begin(out, id, role, keep);
    r(out, rtype::PARAMS, id, &cgi_params());
    r(out, rtype::PARAMS, id, &[]);
    r(out, rtype::STDIN, id, b"hello");
    r(out, rtype::STDIN, id, &[]);
    if role == 3 {
        r(out, rtype::DATA, id, b"file data");
        r(out, rtype::DATA, id, &[]);
    }
}

fn get_values(names: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for n in names {
        push_nv_pair(&mut body, n, b"");
    }
    let mut out = Vec::new();
    r(&mut out, rtype::GET_VALUES, 0, &body);
    out
}

/// The byte streams of the `engine` seeds.
fn engine_cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut add = |name, f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        cases.push((name, v));
    };
    add("empty", &|_| {});
    add("responder", &|o| request(o, 1, 1, false));
    add("authorizer", &|o| request(o, 1, 2, false));
    add("filter", &|o| request(o, 1, 3, false));
    add("pipelined_keepalive", &|o| {
        for id in [1, 1, 2] {
            request(o, id, 1, true);
        }
    });
    add("multiplexed", &|o| {
        begin(o, 1, 1, true);
        begin(o, 2, 3, true);
        r(o, rtype::PARAMS, 2, &cgi_params());
        r(o, rtype::PARAMS, 1, &cgi_params());
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, b"one");
        r(o, rtype::PARAMS, 2, &[]);
        r(o, rtype::STDIN, 2, b"two");
        r(o, rtype::STDIN, 1, &[]);
        r(o, rtype::STDIN, 2, &[]);
        r(o, rtype::DATA, 2, b"data");
        r(o, rtype::DATA, 2, &[]);
    });
    add("padding_on_begin", &|o| {
        rec(o, rtype::BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0], 8);
        r(o, rtype::PARAMS, 1, &cgi_params());
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, b"hello");
        r(o, rtype::STDIN, 1, &[]);
    });
    add("padding_on_stream_ends", &|o| {
        begin(o, 1, 1, false);
        rec(o, rtype::PARAMS, 1, &cgi_params(), 255);
        rec(o, rtype::PARAMS, 1, &[], 7);
        rec(o, rtype::STDIN, 1, b"hello", 3);
        rec(o, rtype::STDIN, 1, &[], 255);
    });
    add("begin_len_7", &|o| {
        rec(o, rtype::BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0], 1)
    });
    add("begin_len_9", &|o| {
        rec(o, rtype::BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0, 0], 7)
    });
    add("begin_len_0", &|o| r(o, rtype::BEGIN_REQUEST, 1, &[]));
    add("begin_id_0", &|o| {
        begin(o, 0, 1, false);
        request(o, 1, 1, false);
    });
    add("unknown_roles", &|o| {
        for role in [0, 4, 0xffff] {
            begin(o, 1, role, true);
            r(o, rtype::PARAMS, 1, &cgi_params());
        }
        request(o, 1, 1, false);
    });
    add("version_0", &|o| {
        request(o, 1, 1, true);
        let mut v = Vec::new();
        request(&mut v, 2, 1, true);
        v[0] = 0;
        o.extend(v);
    });
    add("version_2_mid_stdin", &|o| {
        begin(o, 1, 1, false);
        r(o, rtype::PARAMS, 1, &[]);
        let mut v = Vec::new();
        r(&mut v, rtype::STDIN, 1, b"x");
        v[0] = 2;
        o.extend(v);
    });
    add("abort_before_stdin_eof", &|o| {
        begin(o, 1, 1, true);
        r(o, rtype::PARAMS, 1, &cgi_params());
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, b"he");
        r(o, rtype::ABORT_REQUEST, 1, &[]);
        r(o, rtype::STDIN, 1, b"llo");
        r(o, rtype::STDIN, 1, &[]);
        request(o, 2, 1, false);
    });
    add("abort_after_stdin_eof", &|o| {
        request(o, 1, 1, true);
        r(o, rtype::ABORT_REQUEST, 1, &[]);
        request(o, 1, 1, false);
    });
    add("abort_unknown_id_with_content", &|o| {
        r(o, rtype::ABORT_REQUEST, 9, b"junk");
        begin(o, 1, 1, true);
        r(o, rtype::ABORT_REQUEST, 1, b"content");
        r(o, rtype::ABORT_REQUEST, 1, &[]);
    });
    add("abort_mid_params", &|o| {
        begin(o, 1, 1, true);
        let p = cgi_params();
        r(o, rtype::PARAMS, 1, &p[..p.len() / 2]);
        r(o, rtype::ABORT_REQUEST, 1, &[]);
        r(o, rtype::PARAMS, 1, &p[p.len() / 2..]);
        request(o, 1, 1, false);
    });
    add("get_values", &|o| {
        o.extend(get_values(&[
            mgmt::MAX_CONNS,
            mgmt::MAX_REQS,
            mgmt::MPXS_CONNS,
            b"UNKNOWN",
        ]))
    });
    add("get_values_repeated_names", &|o| {
        // libfcgi builds the answer in a 64-byte stack buffer: four known names smash it.
        let names: Vec<&[u8]> = (0..24)
            .map(|i| [mgmt::MAX_CONNS, mgmt::MAX_REQS, mgmt::MPXS_CONNS][i % 3])
            .collect();
        o.extend(get_values(&names));
    });
    add("get_values_answer_past_one_record", &|o| {
        o.extend(get_values(&[&b"FUZZ_BIG"[..]; 30]));
    });
    add("get_values_malformed", &|o| {
        r(o, rtype::GET_VALUES, 0, &[5, 0, b'a']);
        request(o, 1, 1, false);
    });
    add("get_values_mid_stdin", &|o| {
        begin(o, 1, 1, false);
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, b"abc");
        o.extend(get_values(&[mgmt::MPXS_CONNS]));
        r(o, rtype::STDIN, 1, b"def");
        r(o, rtype::STDIN, 1, &[]);
    });
    add("management_records_with_content", &|o| {
        r(o, 0xff, 0, b"INJ");
        r(o, rtype::GET_VALUES_RESULT, 0, b"\x01\x01ab");
        r(o, rtype::BEGIN_REQUEST, 0, b"12345678");
        begin(o, 1, 1, false);
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, b"abc");
        r(o, rtype::UNKNOWN_TYPE, 0, b"INJ");
        r(o, rtype::STDIN, 1, b"def");
        r(o, rtype::STDIN, 1, &[]);
    });
    add("params_cut_by_stdin", &|o| {
        begin(o, 1, 1, false);
        r(o, rtype::PARAMS, 1, &cgi_params());
        r(o, rtype::STDIN, 1, b"hello");
    });
    for (name, cut) in [
        ("truncated_pair_in_length", 2usize),
        ("truncated_pair_in_name", 8),
        ("truncated_pair_in_value", 30),
    ] {
        cases.push((name, {
            let mut o = Vec::new();
            begin(&mut o, 1, 1, false);
            let mut p = pairs(&[(&[b'N'; 200], b"value")]);
            p.truncate(cut);
            r(&mut o, rtype::PARAMS, 1, &p);
            r(&mut o, rtype::PARAMS, 1, &[]);
            o
        }));
    }
    let mut add = |name, f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        cases.push((name, v));
    };
    add("cve_2025_23016_name_len_7ffffff0", &|o| {
        begin(o, 1, 1, false);
        let mut p = vec![0xff, 0xff, 0xff, 0xf0, 16];
        p.extend_from_slice(b"0123456789abcdef");
        r(o, rtype::PARAMS, 1, &p);
        r(o, rtype::PARAMS, 1, &[]);
    });
    add("declared_lengths_within_limit", &|o| {
        for id in 1..=4 {
            begin(o, id, 1, true);
            r(
                o,
                rtype::PARAMS,
                id,
                &[1, 0x80, 0x0f, 0xff, 0xff, b'K', b'v'],
            );
        }
    });
    add("four_byte_lengths_high_bit", &|o| {
        begin(o, 1, 1, false);
        r(
            o,
            rtype::PARAMS,
            1,
            &[0x80, 0, 0, 1, 0x80, 0, 0, 2, b'a', b'b', b'c'],
        );
        r(o, rtype::PARAMS, 1, &[0x80, 0, 0]);
        r(o, rtype::PARAMS, 1, &[3, 1, b'x', b'y', b'z', b'w']);
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, &[]);
    });
    add("duplicate_begin", &|o| {
        begin(o, 1, 1, true);
        begin(o, 1, 1, true);
    });
    add("begin_on_busy_connection", &|o| {
        begin(o, 1, 1, true);
        begin(o, 2, 1, true);
        r(o, rtype::PARAMS, 2, &cgi_params());
        r(o, rtype::PARAMS, 1, &[]);
    });
    add("records_for_inactive_ids", &|o| {
        r(o, rtype::PARAMS, 5, &cgi_params());
        r(o, rtype::STDIN, 5, b"x");
        r(o, rtype::DATA, 5, &[]);
        request(o, 1, 1, false);
        r(o, rtype::STDIN, 1, b"after end");
    });
    add("stdin_before_params_end", &|o| {
        begin(o, 1, 1, false);
        r(o, rtype::STDIN, 1, b"early");
    });
    add("data_before_stdin_end", &|o| {
        begin(o, 1, 3, false);
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::DATA, 1, b"early");
    });
    add("app_record_types_from_peer", &|o| {
        begin(o, 1, 1, false);
        r(o, rtype::STDOUT, 1, b"out");
        r(o, rtype::STDERR, 1, b"err");
        r(o, rtype::END_REQUEST, 1, &[0; 8]);
        r(o, rtype::GET_VALUES, 1, &[]);
        r(o, 0x42, 1, b"unknown type");
        r(o, rtype::PARAMS, 1, &[]);
        r(o, rtype::STDIN, 1, &[]);
        r(o, rtype::STDIN, 1, &[]);
        r(o, rtype::DATA, 1, &[]);
        r(o, rtype::DATA, 1, &[]);
    });
    add("stdin_max_records", &|o| {
        begin(o, 1, 1, false);
        r(o, rtype::PARAMS, 1, &[]);
        rec(o, rtype::STDIN, 1, &vec![b's'; 0xffff], 255);
        r(o, rtype::STDIN, 1, &[]);
    });
    add("params_at_limits", &|o| {
        begin(o, 1, 1, false);
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0..40)
            .map(|i| (format!("N{i}").into_bytes(), vec![b'v'; 3]))
            .collect();
        let list: Vec<(&[u8], &[u8])> = many.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        r(o, rtype::PARAMS, 1, &pairs(&list));
        r(o, rtype::PARAMS, 1, &[]);
    });
    cases
}

/// The `nvpair` seeds: limits byte, split seed (2 bytes), then the pair stream.
fn nvpair_cases() -> Vec<(&'static str, Vec<u8>)> {
    let with = |lim: u8, seed: u16, s: &[u8]| {
        let mut v = vec![lim, (seed >> 8) as u8, seed as u8];
        v.extend_from_slice(s);
        v
    };
    let cgi = cgi_params();
    vec![
        ("cgi_unlimited", with(0x27, 1, &cgi)),
        ("cgi_bytewise", with(0x27, 0, &cgi)),
        ("cgi_tight_limits", with(0x13, 5, &cgi)),
        (
            "empty_names_values",
            with(0x26, 2, &pairs(&[(b"", b""), (b"", b"v"), (b"n", b"")])),
        ),
        (
            "four_byte_lengths",
            with(0x26, 3, &[0x80, 0, 0, 1, 0x80, 0, 0, 2, b'a', b'b', b'c']),
        ),
        (
            "cve_2025_23016",
            with(0x27, 6, &[0xff, 0xff, 0xff, 0xf0, 16, b'x']),
        ),
        (
            "declared_16mib",
            with(0xd7, 0x2181, &[0, 0x81, 0, 0, 0x20, 0xf9]),
        ),
        ("truncated_length", with(0x26, 7, &[3, 0x80, 0, 0])),
        ("truncated_value", with(0x26, 9, &[1, 5, b'n', b'v', b'a'])),
        (
            "long_pair",
            with(0x26, 4, &pairs(&[(&[b'N'; 300], &[b'V'; 1000])])),
        ),
    ]
}

fn record_cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "stdout_header",
            vec![
                1, 6, 0, 1, 0, 5, 3, 0, 6, 0, 1, b'h', b'e', b'l', b'l', b'o',
            ],
        ),
        (
            "odd_stream",
            vec![
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5, 0x12, 0x34, 1, 2, 3,
            ],
        ),
        ("empty", vec![]),
    ]
}

fn framer_cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        // id 1; stdout "hi"; stderr 3 bytes; finish(0)
        (
            "small_response",
            vec![0, 1, 0, 2, 7, 1, 3, 9, 5, 0, 0, 0, 0, 0, 2],
        ),
        // stdout 0xffff*3 bytes, close, send, large write, finish
        (
            "large_response",
            vec![
                0, 7, 0x80, 0xff, 0xff, 1, 2, 3, 4, 0x12, 0x34, 5, 0, 0, 1, 0,
            ],
        ),
        ("no_finish", vec![0, 3, 0, 10, 1, 2, 3]),
    ]
}

fn engine_records_cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut mux = DEFAULT_KNOBS.to_vec();
    // full request on ids 1 and 2, GET_VALUES, BEGIN id 3 + params + abort
    mux.extend_from_slice(&[
        0x0b, 0x1b, 0x08, 4, 0, 0x80, 1, 0x81, 0x20, 0, 1, 0, 0x21, 1, 3, 1, 0, 0x27, 0,
    ]);
    let mut hostile = TIGHT_KNOBS.to_vec();
    hostile.extend_from_slice(&[
        0x0b, 0x0d, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 16, 5, 0x0c, 2, 1, 0, 9, 9, 0x0f, 1, 0x0b,
    ]);
    vec![("mux", mux), ("hostile", hostile)]
}

/// The `acl` seeds: an IPv4 probe (4 bytes), an IPv6 probe (16 bytes), then the list.
fn acl_cases() -> Vec<(&'static str, Vec<u8>)> {
    let with = |v4: [u8; 4], v6: Ipv6Addr, list: &str| {
        let mut v = v4.to_vec();
        v.extend_from_slice(&v6.octets());
        v.extend_from_slice(list.as_bytes());
        v
    };
    let lo6: Ipv6Addr = "::1".parse().unwrap();
    let ula: Ipv6Addr = "fd00::42".parse().unwrap();
    vec![
        (
            "v4_list",
            with([127, 0, 0, 1], lo6, "127.0.0.1, 10.0.0.0/8,192.168.1.7"),
        ),
        (
            "cidr",
            with([10, 1, 2, 3], ula, "10.0.0.0/8,fd00::/8,0.0.0.0/0,::/0"),
        ),
        (
            "mapped",
            with([1, 2, 3, 4], lo6, "::ffff:1.2.3.0/120,::ffff:0:0/95,::1"),
        ),
        (
            "bad_entries",
            with(
                [1, 1, 1, 1],
                lo6,
                "300.1.1.1,1.1.1.1/33,fd00::/129,x,,/8,1.1.1.1/,::/0008",
            ),
        ),
    ]
}

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    std::fs::write(d.join(name), data).expect("write seed");
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut n = 0;
    for (name, stream) in engine_cases() {
        for (knobs, suffix) in [(DEFAULT_KNOBS, "default"), (TIGHT_KNOBS, "tight")] {
            let mut v = knobs.to_vec();
            v.extend_from_slice(&stream);
            write(&dir, "engine", &format!("{name}.{suffix}"), &v);
            n += 1;
        }
    }
    for (target, cases) in [
        ("nvpair", nvpair_cases()),
        ("record", record_cases()),
        ("framer", framer_cases()),
        ("engine_records", engine_records_cases()),
        ("acl", acl_cases()),
    ] {
        for (name, v) in cases {
            write(&dir, target, name, &v);
            n += 1;
        }
    }
    println!("{n} seeds written under {}", dir.display());
}
