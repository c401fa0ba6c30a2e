//! Integration tests, compiled into one binary: the real exporter binary against the
//! built-in simulator.

mod cli;
mod helpers;
mod poll;
mod state;
