//! Integration tests, compiled into one binary: the real exporter binary against the
//! built-in simulator.

mod backfill;
mod budget;
mod cli;
mod fuzz;
mod helpers;
mod hostile;
mod poll;
mod prom;
mod prometheus;
mod prometheus_e2e;
mod security;
mod simulate;
mod state;
