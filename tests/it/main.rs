//! Integration tests, compiled into one binary: the exporter (in-process, or the binary
//! where the binary is what is tested) against the built-in simulator.

mod app;
mod backfill;
mod budget;
mod calls;
mod check;
mod cli;
mod compose;
mod dashboards;
mod deploy;
mod fuzz;
mod helpers;
mod hostile;
mod poll;
mod prom;
mod prometheus;
mod prometheus_e2e;
mod reload;
mod security;
mod simulate;
mod stack;
mod start_incident;
mod state;
mod status_page;
mod toolkit;
