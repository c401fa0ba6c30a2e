//! The simulated contact center's IVR: its routing points, their menus and where each
//! option sends a call, the daily curve of call volume, and each routing point's usual
//! hang-up share. Pure data and pure functions; [`super::traffic`] walks callers
//! through it.
//!
//! Self-service options: `SALDO` (account or debt balance, at "Cobranzas" and
//! "Facturación") and `HORARIOS` (opening hours, at the main menu, "Atención al Cliente"
//! and "Horario No Hábil") are where the IVR serves the caller by itself. A demo or
//! simulator config sets `calls.self_service.options: [SALDO, HORARIOS]` to count those
//! calls as `self_service` ([`SELF_SERVICE_OPTIONS`]).

use jiff::civil::{DateTime, Weekday};

use super::random::mix;

/// The `cod_opc_menu` values after which the IVR has served the caller by itself.
pub const SELF_SERVICE_OPTIONS: [&str; 2] = ["SALDO", "HORARIOS"];

/// Where a menu option sends the call, and so the row's `dn_transfer` and `result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Another routing point (index into [`POOL`]); `dn_transfer` is its id, `ok`.
    Rp(usize),
    /// An agent queue or voicemail extension: `dn_transfer` is it, `ok`, the call
    /// leaves the IVR.
    Queue(&'static str),
    /// The IVR plays the information asked for (a balance, opening hours). Most callers
    /// hang up after it (`hung up`, the call's last row); some go back to the main menu
    /// (`ok`, `dn_transfer` the main menu's id).
    SelfService,
    /// `PULSE`: nothing pressed; the menu plays again (`ok`, no transfer). A second
    /// PULSE at the same routing point and the IVR gives up: `hung up`.
    Repeat,
    /// The call ends in the IVR (the caller hangs up, or a "no agent" message):
    /// `hung up`.
    End,
}

#[derive(Debug)]
pub(crate) struct MenuOption {
    pub(crate) code: &'static str,
    weight: u32,
    pub(crate) next: Next,
}

#[derive(Debug)]
pub(crate) struct RoutingPoint {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    /// Typical share of callers hanging up here, whatever they press (options that end
    /// the call add to it).
    pub(crate) base_hangup: f64,
    options: &'static [MenuOption],
}

const fn opt(code: &'static str, weight: u32, next: Next) -> MenuOption {
    MenuOption { code, weight, next }
}

/// Index of the main menu in [`POOL`]: every call enters here, except after hours.
pub(crate) const MAIN: usize = 0;
/// Index of the after-hours routing point in [`POOL`].
pub(crate) const AFTER_HOURS: usize = 6;
/// The routing points hang-up incidents hit: always active, a quarter of the calls each,
/// and few hang-ups of their own, so an incident stands out against the baseline
/// (see [`super::incidents`]).
pub(crate) const INCIDENT_RPS: [usize; 2] = [1, 2];

/// A Colombian contact center's IVR. The first five are always active; a seed turns
/// on 0 to 3 more, so tenants differ. Names carry accents, quotes, an apostrophe and a
/// backslash on purpose: the exporter must take them as received.
pub(crate) static POOL: [RoutingPoint; 8] = [
    RoutingPoint {
        id: "1001",
        name: "Menú Principal",
        base_hangup: 0.06,
        options: &[
            opt("1", 26, Next::Rp(1)),
            opt("2", 24, Next::Rp(2)),
            opt("3", 14, Next::Rp(3)),
            opt("4", 10, Next::Rp(4)),
            opt("5", 8, Next::Rp(5)),
            opt("AGENTE", 8, Next::Queue("3000")),
            opt("HORARIOS", 5, Next::SelfService),
            // No key pressed at the main menu: the default route is the general queue.
            opt("PULSE", 7, Next::Queue("3000")),
            opt("CUELGA_LLAMADA", 3, Next::End),
        ],
    },
    RoutingPoint {
        id: "1002",
        name: "Ventas y Renovación",
        base_hangup: 0.08,
        options: &[
            opt("1", 35, Next::Queue("3001")),
            opt("2", 30, Next::Queue("3002")),
            opt("AGENTE", 20, Next::Queue("3003")),
            opt("PULSE", 10, Next::Repeat),
            opt("CUELGA_LLAMADA", 5, Next::End),
        ],
    },
    RoutingPoint {
        id: "1003",
        name: "Soporte Técnico",
        base_hangup: 0.10,
        options: &[
            opt("1", 30, Next::Queue("3011")),
            opt("2", 25, Next::Queue("3012")),
            opt("AGENTE", 20, Next::Queue("3013")),
            opt("BUZON", 10, Next::Queue("7001")),
            opt("PULSE", 10, Next::Repeat),
            opt("CUELGA_LLAMADA", 5, Next::End),
        ],
    },
    RoutingPoint {
        id: "1004",
        name: "Cobranzas \"Mora\"",
        base_hangup: 0.15,
        options: &[
            opt("AGENTE", 35, Next::Queue("3021")),
            opt("SALDO", 25, Next::SelfService),
            opt("NO_PASA_AGENTE", 15, Next::End),
            opt("CUELGA_LLAMADA", 15, Next::End),
            opt("PULSE", 10, Next::Repeat),
        ],
    },
    RoutingPoint {
        id: "1005",
        name: "Atención al Cliente - PQR's",
        base_hangup: 0.10,
        options: &[
            opt("AGENTE", 45, Next::Queue("3031")),
            opt("BUZON", 20, Next::Queue("7002")),
            opt("HORARIOS", 10, Next::SelfService),
            opt("CV_BUZON", 10, Next::End),
            opt("PULSE", 10, Next::Repeat),
            opt("NO_PASA_AGENTE", 5, Next::End),
        ],
    },
    RoutingPoint {
        id: "1006",
        name: "Validación de Identidad (Cédula)",
        base_hangup: 0.09,
        options: &[
            opt("1", 55, Next::Rp(7)),
            opt("2", 20, Next::Queue("3042")),
            opt("AGENTE", 15, Next::Queue("3041")),
            opt("PULSE", 10, Next::Repeat),
        ],
    },
    RoutingPoint {
        id: "1007",
        name: "Horario No Hábil",
        base_hangup: 0.12,
        options: &[
            opt("BUZON", 45, Next::Queue("7003")),
            opt("HORARIOS", 30, Next::SelfService),
            opt("CV_BUZON", 15, Next::Queue("7004")),
            opt("CUELGA_LLAMADA", 10, Next::End),
        ],
    },
    RoutingPoint {
        id: "1008",
        name: "Facturación\\Pagos en Línea",
        base_hangup: 0.07,
        options: &[
            opt("SALDO", 35, Next::SelfService),
            opt("1", 25, Next::Queue("3051")),
            opt("2", 15, Next::Queue("3052")),
            opt("AGENTE", 15, Next::Queue("3053")),
            opt("PULSE", 10, Next::Repeat),
        ],
    },
];

/// Number of active routing points for this seed: 5 to 8.
pub(crate) fn active_count(seed: u64) -> usize {
    5 + (mix(&[seed, 0xA11C_E5ED]) % 4) as usize
}

/// What a caller may press at `rp` with `rows_left` rows left in the call (counting
/// this one): an option that leads on needs room for the next row.
pub(crate) fn usable(option: &MenuOption, active: usize, rows_left: usize) -> bool {
    match option.next {
        Next::Rp(target) => target < active && rows_left >= 2,
        Next::Repeat => rows_left >= 2,
        _ => true,
    }
}

/// One option of `rp`, by weight among the usable ones; `ticket` is uniform in
/// `[0, u64::MAX]`. `None` only if none is usable (never, with the pool above).
pub(crate) fn pick(
    rp: usize,
    active: usize,
    rows_left: usize,
    ticket: u64,
) -> Option<&'static MenuOption> {
    let options = POOL[rp].options;
    let total: u64 = options
        .iter()
        .filter(|o| usable(o, active, rows_left))
        .map(|o| u64::from(o.weight))
        .sum();
    if total == 0 {
        return None;
    }
    let mut ticket = ticket % total;
    for option in options.iter().filter(|o| usable(o, active, rows_left)) {
        let weight = u64::from(option.weight);
        if ticket < weight {
            return Some(option);
        }
        ticket -= weight;
    }
    None
}

/// Relative call volume by local hour: quiet nights, a busy morning, a lunch dip and a
/// second peak in the afternoon. Linear between the hourly points.
pub(crate) fn daily_curve(at: DateTime) -> f64 {
    const POINTS: [f64; 25] = [
        0.08, 0.06, 0.05, 0.05, 0.05, 0.08, 0.20, 0.60, 1.30, 1.70, 1.80, 1.70, 1.20, 1.10, 1.50,
        1.60, 1.50, 1.20, 0.80, 0.50, 0.35, 0.25, 0.15, 0.10, 0.08,
    ];
    let hour = at.hour().clamp(0, 23) as usize;
    let frac = f64::from(at.minute()) / 60.0;
    let level = POINTS[hour] + (POINTS[hour + 1] - POINTS[hour]) * frac;
    let weekday_factor = match at.weekday() {
        Weekday::Saturday => 0.6,
        Weekday::Sunday => 0.35,
        _ => 1.0,
    };
    // Floor: the demo must show data at 3 a.m. on a Sunday too.
    (level * weekday_factor).max(0.25)
}

pub(crate) fn is_after_hours(at: DateTime) -> bool {
    let hour = at.hour();
    !(7..20).contains(&hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_service_options_are_in_the_menus() {
        for code in SELF_SERVICE_OPTIONS {
            let at: Vec<&str> = POOL
                .iter()
                .filter(|rp| {
                    rp.options
                        .iter()
                        .any(|o| o.code == code && o.next == Next::SelfService)
                })
                .map(|rp| rp.id)
                .collect();
            assert!(!at.is_empty(), "{code}");
        }
        // Every self-service option is one of the documented ones.
        for rp in &POOL {
            for o in rp.options.iter().filter(|o| o.next == Next::SelfService) {
                assert!(SELF_SERVICE_OPTIONS.contains(&o.code), "{}", o.code);
            }
        }
    }

    #[test]
    fn a_call_with_one_row_left_only_ends() {
        for (i, rp) in POOL.iter().enumerate() {
            for t in 0..200u64 {
                let o = pick(i, 8, 1, t * 7919).unwrap();
                assert!(
                    !matches!(o.next, Next::Rp(_) | Next::Repeat),
                    "{} {}",
                    rp.id,
                    o.code
                );
            }
        }
        // Inactive routing points are never a target.
        for t in 0..500u64 {
            let o = pick(MAIN, 5, 6, t * 104_729).unwrap();
            assert!(
                !matches!(o.next, Next::Rp(target) if target >= 5),
                "{}",
                o.code
            );
        }
    }
}
