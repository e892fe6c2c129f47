//! The `print2mqtt` command: arguments, logging, configuration, then the app.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use print2mqtt::config::{Config, Sources};
use print2mqtt::mqtt::remove::{RemoveError, remove_printer};
use print2mqtt::octoeverywhere::{api::Call, cli as oe};
use print2mqtt::{app, healthcheck, simulate};
use tracing_subscriber::EnvFilter;

/// Turns 3D-printer notification webhooks into MQTT topics and Home Assistant devices.
#[derive(Debug, Parser)]
#[command(name = "print2mqtt", version, about)]
struct Cli {
    /// TOML configuration file (default: $PRINT2MQTT_CONFIG, else config/print2mqtt.toml when present)
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration and print it with secrets redacted
    CheckConfig,
    /// Remove a printer from the broker: clear its retained topics and its
    /// Home Assistant discovery configs, so Home Assistant deletes the device
    RemovePrinter {
        /// The printer's slug (its topic level) or its printer id
        printer: String,
    },
    /// Register the OctoEverywhere App Connection webhook now, for every
    /// printer with an app_token (a running bridge does this at start and
    /// every renew_days)
    OeRegister {
        /// Only this printer (its printer id or alias)
        #[arg(long, value_name = "ID")]
        printer: Option<String>,
    },
    /// Ask OctoEverywhere to send a test notification to the registered
    /// webhook
    OeTest {
        /// Only this printer (its printer id or alias)
        #[arg(long, value_name = "ID")]
        printer: Option<String>,
    },
    /// Delete the OctoEverywhere App Connection webhook
    OeUnregister {
        /// Only this printer (its printer id or alias)
        #[arg(long, value_name = "ID")]
        printer: Option<String>,
    },
    /// Ask the running bridge's /healthz (exit 0 healthy, 1 not): the
    /// container HEALTHCHECK
    Healthcheck,
    /// Play a whole simulated print against a running bridge
    Simulate(simulate::Args),
}

fn main() -> ExitCode {
    print2mqtt::memory::tune();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Some(Command::Simulate(args)) = &cli.command {
        return run_simulation(args);
    }
    let sources = Sources {
        file: cli.config,
        ..Sources::default()
    };
    let config = match Config::load(&sources) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        print!("{}", config.to_redacted_toml());
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    // One thread runs every task; store commits and file reads go to
    // tokio's blocking threads. A webhook passes through four tasks (HTTP,
    // writer, publisher, MQTT client): on one thread these hand-offs are
    // plain polls, where two workers paid a futex wake-up and a context
    // switch for each (docs/performance.md measures both).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Healthcheck) = cli.command {
        return match runtime.block_on(healthcheck::check(&config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("unhealthy: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::RemovePrinter { printer }) = cli.command {
        return match runtime.block_on(remove_printer(&config, &printer)) {
            Ok(removed) => {
                println!(
                    "removed printer `{}`: cleared {} retained topics and {} discovery configs",
                    removed.slug, removed.values, removed.configs
                );
                ExitCode::SUCCESS
            }
            Err(e @ RemoveError::NotFound { .. }) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
            Err(RemoveError::Broker(e)) => {
                eprintln!("error: cannot remove `{printer}`: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let oe_call = match cli.command {
        Some(Command::OeRegister { printer }) => Some((Call::Register, printer)),
        Some(Command::OeTest { printer }) => Some((Call::Test, printer)),
        Some(Command::OeUnregister { printer }) => Some((Call::Unregister, printer)),
        _ => None,
    };
    if let Some((call, printer)) = oe_call {
        return match runtime.block_on(oe::run(&config, call, printer.as_deref())) {
            Ok(reports) => {
                for r in &reports {
                    println!("{}", r.text);
                }
                if reports.iter().all(|r| r.ok) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime.block_on(app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `print2mqtt simulate`: needs no configuration, only the bridge's URL.
fn run_simulation(args: &simulate::Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(simulate::run(args)) {
        Ok(sent) => {
            println!("simulated a whole print: {sent} webhooks, all accepted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
