//! Tests of `/metrics`, and the reference they hold the direct text writer to: the
//! business families as `prometheus` protobuf values through a [`Collector`], which the
//! `prometheus` encoder turns into the text the scrape must give byte for byte.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

use super::business::{DUPLICATES, OVERFLOW};
use super::*;
use crate::calls::{CallOutcome, STEP_BUCKETS};
use crate::config::Limits;
use crate::totals::{Histogram, OVERFLOW_LABELS, RoutingPoint, Totals};
use crate::wolkvox::row::{Field, Outcome, RawRow};

/// The business families through the `prometheus` data model: slow, and only the
/// reference for [`BusinessCollector`]'s direct text.
struct ProtoCollector {
    descs: Vec<Desc>,
    bounds: Vec<f64>,
    ops: Vec<(String, SharedTotals)>,
}

fn kind(t: &str) -> MetricType {
    match t {
        "histogram" => MetricType::HISTOGRAM,
        _ => MetricType::COUNTER,
    }
}

fn family(name: &str, help: &str, t: MetricType) -> MetricFamily {
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_string());
    mf.set_help(help.to_string());
    mf.set_field_type(t);
    mf
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut lp = proto::LabelPair::default();
            lp.set_name(k.to_string());
            lp.set_value(v.to_string());
            lp
        })
        .collect()
}

fn counter(pairs: &[(&str, &str)], v: u64) -> proto::Metric {
    let mut c = proto::Counter::default();
    c.set_value(v as f64);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

impl ProtoCollector {
    fn new(bounds: Vec<f64>, ops: Vec<(String, SharedTotals)>) -> ProtoCollector {
        let mut descs: Vec<Desc> = FAMILIES
            .iter()
            .chain(CALL_FAMILIES.iter())
            .filter_map(|(name, help, _, labels)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    labels.iter().map(|s| s.to_string()).collect(),
                    HashMap::new(),
                )
                .ok()
            })
            .collect();
        for (name, help, labels) in [
            (DUPLICATES.0, DUPLICATES.1, &["operation"][..]),
            (OVERFLOW.0, OVERFLOW.1, &["operation", "label"][..]),
        ] {
            if let Ok(d) = Desc::new(
                name.to_string(),
                help.to_string(),
                labels.iter().map(|s| s.to_string()).collect(),
                HashMap::new(),
            ) {
                descs.push(d);
            }
        }
        ProtoCollector { descs, bounds, ops }
    }

    fn render(&self) -> Vec<MetricFamily> {
        let mut fams: Vec<MetricFamily> = FAMILIES
            .iter()
            .map(|(n, h, t, _)| family(n, h, kind(t)))
            .collect();
        let mut calls: Vec<MetricFamily> = CALL_FAMILIES
            .iter()
            .map(|(n, h, t, _)| family(n, h, kind(t)))
            .collect();
        let mut dup = family(DUPLICATES.0, DUPLICATES.1, MetricType::COUNTER);
        let mut ovf = family(OVERFLOW.0, OVERFLOW.1, MetricType::COUNTER);
        for (op, shared) in &self.ops {
            // Take the snapshot and let go of the lock before rendering.
            let t = match shared.read() {
                Ok(g) => Arc::clone(&g),
                Err(p) => Arc::clone(&p.into_inner()),
            };
            let op = op.as_str();
            for ((rp_id, rp_name), rp) in &t.routing_points {
                let l = [
                    ("operation", op),
                    ("rp_id", rp_id.as_str()),
                    ("rp_name", rp_name.as_str()),
                ];
                for o in Outcome::ALL {
                    let lr = [l[0], l[1], l[2], ("result", o.label())];
                    fams[0]
                        .mut_metric()
                        .push(counter(&lr, rp.interactions[o.index()]));
                    fams[4].mut_metric().push(histogram(
                        &self.bounds,
                        &lr,
                        &rp.durations[o.index()],
                    ));
                }
                fams[1].mut_metric().push(counter(&l, rp.pulse));
                for (opt, v) in &rp.options {
                    fams[2]
                        .mut_metric()
                        .push(counter(&[l[0], l[1], l[2], ("option", opt)], *v));
                }
                for (dn, v) in &rp.transfers {
                    fams[3]
                        .mut_metric()
                        .push(counter(&[l[0], l[1], l[2], ("dn_transfer", dn)], *v));
                }
            }
            fams[5]
                .mut_metric()
                .push(counter(&[("operation", op)], t.rows));
            fams[6].mut_metric().push(counter(
                &[("operation", op), ("field", "date")],
                t.invalid_date,
            ));
            fams[6].mut_metric().push(counter(
                &[("operation", op), ("field", "time")],
                t.invalid_time,
            ));
            dup.mut_metric()
                .push(counter(&[("operation", op)], t.duplicates));
            let c = &t.calls;
            for ((rp_id, rp_name), counts) in &c.by_entry {
                for o in CallOutcome::ALL {
                    calls[0].mut_metric().push(counter(
                        &[
                            ("operation", op),
                            ("rp_id", rp_id),
                            ("rp_name", rp_name),
                            ("outcome", o.label()),
                        ],
                        counts[o.index()],
                    ));
                }
            }
            for o in CallOutcome::ALL {
                let l = [("operation", op), ("outcome", o.label())];
                calls[1]
                    .mut_metric()
                    .push(histogram(&STEP_BUCKETS, &l, &c.steps[o.index()]));
                calls[2]
                    .mut_metric()
                    .push(histogram(&self.bounds, &l, &c.durations[o.index()]));
            }
            calls[3]
                .mut_metric()
                .push(counter(&[("operation", op)], c.late_rows));
            calls[4]
                .mut_metric()
                .push(counter(&[("operation", op)], c.rows_without_call));
            for (i, label) in OVERFLOW_LABELS.iter().enumerate() {
                ovf.mut_metric().push(counter(
                    &[("operation", op), ("label", label)],
                    t.overflow[i],
                ));
            }
        }
        fams.push(dup);
        fams.push(ovf);
        // The encoder writes nothing for a family without series; the writer neither.
        fams.extend(calls.into_iter().filter(|f| !f.get_metric().is_empty()));
        fams
    }
}

fn histogram(bounds: &[f64], pairs: &[(&str, &str)], h: &Histogram) -> proto::Metric {
    let mut ph = proto::Histogram::default();
    ph.set_sample_count(h.count);
    ph.set_sample_sum(h.sum);
    let mut cumulative = 0;
    let buckets = bounds
        .iter()
        .zip(h.buckets.iter().chain(std::iter::repeat(&0)))
        .map(|(bound, n)| {
            cumulative += n;
            let mut b = proto::Bucket::default();
            b.set_upper_bound(*bound);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    ph.set_bucket(buckets);
    let mut m = proto::Metric::from_label(labels(pairs));
    m.set_histogram(ph);
    m
}

impl Collector for ProtoCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.render()
    }
}

fn row(rp: &str, opt: &str, dn: &str, result: &str, time: &str, date: &str) -> RawRow<'static> {
    let f = |s: &str| Field(s.to_string().into());
    RawRow {
        rp_id: f(rp),
        rp_name: f("Menú \"A\"\n"),
        cod_opc_menu: f(opt),
        dn_transfer: f(dn),
        date: f(date),
        result: f(result),
        time: f(time),
        ..Default::default()
    }
}

fn shared(t: Totals) -> SharedTotals {
    Arc::new(RwLock::new(Arc::new(t)))
}

/// The direct text writer gives, byte for byte, what the `prometheus` encoder gives
/// for the collector's families after `Registry::gather` sorted them.
#[test]
fn direct_text_equals_the_encoder_output() {
    let limits = Limits {
        routing_points: 4,
        options_per_routing_point: 3,
        transfers_per_routing_point: 2,
    };
    let bounds = vec![0.5, 5.0, 10.0];
    let mut t = Totals::default();
    let mut n = 0u64;
    for rp in ["2", "10", "1", "", "z\\q", "9"] {
        for opt in ["PULSE", "b", "a", "", "c\n", "d"] {
            for dn in ["", "3001", "30\"0", "2999"] {
                for result in ["ok", "hung up", "x"] {
                    n += 1;
                    let time = ["3", "0.25", "bad", "7", "1e3"][(n % 5) as usize];
                    let date = if n.is_multiple_of(7) {
                        ""
                    } else {
                        "2026-11-27 10:00:00"
                    };
                    t.apply(
                        &row(rp, opt, dn, result, time, date).read(),
                        &limits,
                        &bounds,
                    );
                }
            }
        }
    }
    t.duplicates = 3;
    t.rows = (1u64 << 53) + 3; // past exact integers in f64
    let mut big = RoutingPoint::new(bounds.len());
    big.interactions = [u64::MAX, 1 << 60, 0];
    big.durations[0].sum = 0.1 + 0.2;
    t.routing_points.insert(("0".into(), "Ä".into()), big);
    t.calls = crate::calls::CallTotals::new(bounds.len());
    t.calls
        .by_entry
        .insert(("2".into(), "Menú \"A\"".into()), [3, 1, 0, 2]);
    t.calls
        .by_entry
        .insert(("10".into(), "z\\q".into()), [0, 0, 7, 1 << 60]);
    t.calls.steps[1].observe(&STEP_BUCKETS, 4.0);
    t.calls.steps[1].observe(&STEP_BUCKETS, 30.0);
    t.calls.durations[2].observe(&bounds, 0.3);
    t.calls.late_rows = 5;
    t.calls.rows_without_call = 2;
    let ops = vec![
        ("zeta".to_string(), shared(t.clone())),
        ("acme".to_string(), shared(t)),
        ("empty".to_string(), shared(Totals::default())),
    ];
    let business = BusinessCollector::new(bounds.clone(), ops.clone());
    let r = Registry::new();
    r.register(Box::new(ProtoCollector::new(bounds.clone(), ops.clone())))
        .unwrap();
    let mut want = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut want).unwrap();
    let mut got = business.text_families();
    got.sort_by(|a, b| a.0.cmp(b.0));
    let got: String = got.into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, String::from_utf8(want).unwrap());

    // The whole page, business families in among the registry's, as one registry
    // holding both would render it.
    let whole = Metrics::without_process_series(bounds.clone(), ops.clone()).unwrap();
    whole
        .registry
        .register(Box::new(ProtoCollector::new(bounds.clone(), ops.clone())))
        .unwrap();
    let mut want = Vec::new();
    TextEncoder::new()
        .encode(&whole.registry.gather(), &mut want)
        .unwrap();
    let m = Metrics::without_process_series(bounds, ops).unwrap();
    assert_eq!(m.render(), String::from_utf8(want).unwrap());
    assert_eq!(m.render(), m.render());
}

#[test]
fn renders_valid_text_with_known_series_at_zero() {
    let mut t = Totals::default();
    t.apply(
        &row("1", "PULSE", "3001", "ok", "4", "2026-11-27 10:00:00").read(),
        &Limits::default(),
        &[5.0, 10.0],
    );
    let m = Metrics::new(vec![5.0, 10.0], vec![("acme".into(), shared(t))]).unwrap();
    let text = m.render();
    for line in [
        "wolkvox_ivr_interactions_total{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\",result=\"hung_up\"} 0",
        "wolkvox_ivr_interactions_total{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\",result=\"ok\"} 1",
        "wolkvox_ivr_interaction_duration_seconds_bucket{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\",result=\"ok\",le=\"5\"} 1",
        "wolkvox_ivr_interaction_duration_seconds_bucket{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\",result=\"ok\",le=\"+Inf\"} 1",
        "wolkvox_ivr_interaction_duration_seconds_sum{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\",result=\"ok\"} 4",
        "wolkvox_ivr_pulse_total{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\"} 1",
        "wolkvox_ivr_menu_option_total{operation=\"acme\",rp_id=\"1\",rp_name=\"Menú \\\"A\\\"\",option=\"PULSE\"} 1",
        "wolkvox_ivr_rows_invalid_total{operation=\"acme\",field=\"time\"} 0",
        "wolkvox_poll_errors_total{operation=\"acme\",reason=\"token_limit\"} 0",
        "wolkvox_label_overflow_total{operation=\"acme\",label=\"option\"} 0",
        "wolkvox_ivr_rows_duplicate_total{operation=\"acme\"} 0",
        "wolkvox_up{operation=\"acme\"} 0",
        "# TYPE wolkvox_ivr_interaction_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
}

/// The standard process series are on the page, with values a live process has.
#[cfg(target_os = "linux")]
#[test]
fn renders_the_process_series() {
    let m = Metrics::new(vec![5.0], vec![("acme".into(), shared(Totals::default()))]).unwrap();
    let text = m.render();
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("missing {name}\n{text}"));
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_resident_memory_bytes") > 0.0);
    assert!(value("process_virtual_memory_bytes") > 0.0);
    assert!(value("process_open_fds") >= 1.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    // After 2020, and not in the future.
    let start = value("process_start_time_seconds");
    assert!(start > 1.6e9, "{start}");
    assert!(
        start <= jiff::Timestamp::now().as_second() as f64 + 1.0,
        "{start}"
    );
    // Still every business family and exporter series.
    assert!(text.contains("wolkvox_up{operation=\"acme\"} 0\n"));
    assert!(text.contains("wolkvox_ivr_rows_total{operation=\"acme\"} 0\n"));
}
