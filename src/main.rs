//! The binary: parse, set up logging, act on the validated settings. Everything else
//! lives in the library, where tests reach it.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

use wolkvox_exporter::cli::{Cli, Settings};
use wolkvox_exporter::config::ProcessEnv;
use wolkvox_exporter::{execute, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    match Settings::from_cli(cli, &ProcessEnv)
        .map_err(Into::into)
        .and_then(execute)
    {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
