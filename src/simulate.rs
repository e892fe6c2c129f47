//! `print2mqtt simulate`: plays a whole print (started, first layer, progress
//! every 10 %, paused and resumed, complete, bed cooldown) as webhooks
//! against a running bridge, with a progress bar, so a dashboard can be
//! watched filling before any printer is involved.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

/// How long the simulated print takes at `--speed 1` (excluding the pause).
const PRINT_SECS: u64 = 3600;
/// First layer done after this long.
const FIRST_LAYER_SECS: u64 = 180;
/// The pause after the 50 % progress webhook lasts this long.
const PAUSE_SECS: u64 = 120;
/// The bed has cooled down this long after the print completed.
const COOLDOWN_SECS: u64 = 600;
/// The simulated part: a 48 mm tall boat in 0.2 mm layers.
const TOTAL_LAYERS: u64 = 240;
const LAYER_MM: f64 = 0.2;
/// Time the bridge gets to answer one webhook.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Which sender the simulated webhooks imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// OctoEverywhere notification webhooks (JSON with `EventType`).
    Octoeverywhere,
    /// The OctoPrint-Webhooks plugin with its "get all data" JSON template.
    Octoprint,
}

/// `print2mqtt simulate` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Webhook URL of a running bridge
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/webhook"
    )]
    pub url: String,
    /// Printer id and name the webhooks carry
    #[arg(long, value_name = "NAME", default_value = "Simulated Printer")]
    pub printer: String,
    /// Which sender to imitate
    #[arg(long, value_enum, default_value_t = Dialect::Octoeverywhere)]
    pub dialect: Dialect,
    /// Time lapse: the hour-long print and its cooldown are played this many
    /// times faster than real time (1 = real time)
    #[arg(long, value_name = "N", default_value_t = 60.0)]
    pub speed: f64,
    /// The bridge's webhook secret (auth.secret), if it has one
    #[arg(
        long,
        value_name = "S",
        env = "PRINT2MQTT_AUTH__SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,
    /// A snapshot URL to send along (OctoEverywhere's SnapshotUrl)
    #[arg(long, value_name = "URL")]
    pub snapshot_url: Option<String>,
}

/// One webhook of the simulated print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Started,
    FirstLayer,
    Progress,
    Paused,
    Resumed,
    Complete,
    BedCooldown,
}

impl Step {
    /// The event name the bridge publishes for this step with the
    /// OctoEverywhere dialect.
    pub fn event(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::FirstLayer => "first_layer_complete",
            Step::Progress => "progress",
            Step::Paused => "paused",
            Step::Resumed => "resumed",
            Step::Complete => "complete",
            Step::BedCooldown => "bed_cooldown_complete",
        }
    }
}

/// A step and the moment it happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Planned {
    pub step: Step,
    /// Seconds since the print started, at `--speed 1`.
    pub at: u64,
    /// Seconds spent printing (the pause does not count).
    pub printed: u64,
    pub progress: u8,
}

/// The whole print, in order.
pub fn plan() -> Vec<Planned> {
    let mut out = Vec::new();
    let mut paused_for = 0;
    let mut push = |step, printed: u64, paused_for: u64| {
        let progress = (printed * 100 / PRINT_SECS) as u8;
        out.push(Planned {
            step,
            at: printed + paused_for,
            printed,
            progress,
        });
    };
    push(Step::Started, 0, 0);
    push(Step::FirstLayer, FIRST_LAYER_SECS, 0);
    for tenth in 1..=9 {
        let printed = PRINT_SECS * tenth / 10;
        push(Step::Progress, printed, paused_for);
        if tenth == 5 {
            push(Step::Paused, printed, paused_for);
            paused_for += PAUSE_SECS;
            push(Step::Resumed, printed, paused_for);
        }
    }
    push(Step::Complete, PRINT_SECS, paused_for);
    let done = out.last().map_or(0, |p| p.at);
    out.push(Planned {
        step: Step::BedCooldown,
        at: done + COOLDOWN_SECS,
        printed: PRINT_SECS,
        progress: 100,
    });
    out
}

/// What every webhook of one simulated print shares.
#[derive(Debug, Clone)]
pub struct Print {
    pub printer: String,
    pub print_id: String,
    pub file: String,
    pub secret: Option<String>,
    pub snapshot_url: Option<String>,
}

/// The webhook body for `p` in `dialect`.
pub fn body(dialect: Dialect, print: &Print, p: &Planned) -> Value {
    let remaining = PRINT_SECS - p.printed;
    let layer = (TOTAL_LAYERS * u64::from(p.progress) / 100).max(1);
    let z = (layer as f64 * LAYER_MM * 100.0).round() / 100.0;
    match dialect {
        Dialect::Octoeverywhere => {
            let code = match p.step {
                Step::Started => 1,
                Step::Complete => 2,
                Step::Paused => 4,
                Step::Resumed => 5,
                Step::Progress => 6,
                Step::FirstLayer => 10,
                Step::BedCooldown => 15,
            };
            let mut b = json!({
                "PrinterId": print.printer,
                "PrinterName": print.printer,
                "EventType": code,
                "FileName": print.file,
                "Progress": p.progress,
                "DurationSec": p.printed,
                "TimeRemainingSec": if p.step == Step::BedCooldown { -1 } else { remaining as i64 },
                "ZOffsetMM": z,
                "CurrentLayer": layer,
                "TotalLayers": TOTAL_LAYERS,
            });
            if p.step != Step::BedCooldown {
                b["PrintId"] = json!(print.print_id);
            }
            if let Some(s) = &print.secret {
                b["SecretKey"] = json!(s);
            }
            if let Some(u) = &print.snapshot_url {
                b["SnapshotUrl"] = json!(u);
            }
            b
        }
        Dialect::Octoprint => {
            let (topic, message) = match p.step {
                Step::Started => ("Print Started", "Your print has started.".to_owned()),
                Step::Complete => ("Print Done", "Your print is done.".to_owned()),
                Step::Paused => ("Print Paused", "Your print has paused.".to_owned()),
                Step::Resumed => ("Print Resumed", "Your print has resumed.".to_owned()),
                Step::Progress => (
                    "Print Progress",
                    format!("Your print is {} % complete.", p.progress),
                ),
                // The plugin has no topics of its own for these.
                Step::FirstLayer => ("Custom Event", "First layer complete".to_owned()),
                Step::BedCooldown => ("Custom Event", "Bed cooldown complete".to_owned()),
            };
            let mut b = json!({
                "deviceIdentifier": print.printer,
                "topic": topic,
                "message": message,
                "extra": {"name": print.file, "path": print.file, "origin": "local"},
                "job": {"file": {"name": print.file}},
                "progress": {
                    "completion": p.progress,
                    "printTime": p.printed,
                    "printTimeLeft": remaining,
                },
                "currentZ": z,
            });
            if let Some(s) = &print.secret {
                b["apiSecret"] = json!(s);
            }
            b
        }
    }
}

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--speed must be a positive number")]
    BadSpeed,
    #[error("cannot reach the bridge at {url} ({step}): {source}")]
    Unreachable {
        url: String,
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("the bridge answered {status} to `{step}`: {body}")]
    Refused {
        status: u16,
        step: &'static str,
        body: String,
    },
}

/// Plays the print against `args.url`; returns the number of webhooks sent.
pub async fn run(args: &Args) -> Result<usize, SimulateError> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(SimulateError::BadSpeed);
    }
    let print = Print {
        printer: args.printer.clone(),
        print_id: ulid::Ulid::generate().to_string(),
        file: "simulated_benchy.gcode".into(),
        secret: args.secret.clone().filter(|s| !s.is_empty()),
        snapshot_url: args.snapshot_url.clone(),
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|source| SimulateError::Unreachable {
            url: args.url.clone(),
            step: "start",
            source,
        })?;
    let steps = plan();
    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {msg}")
            // The template is a constant known to parse.
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut clock = 0;
    for p in &steps {
        let wait = Duration::from_secs_f64((p.at - clock) as f64 / args.speed);
        clock = p.at;
        bar.set_message(format!("waiting for {}", p.step.event()));
        tokio::time::sleep(wait).await;
        let body = body(args.dialect, &print, p);
        let answer = client
            .post(&args.url)
            .json(&body)
            .send()
            .await
            .map_err(|source| SimulateError::Unreachable {
                url: args.url.clone(),
                step: p.step.event(),
                source,
            })?;
        let status = answer.status().as_u16();
        if status != 200 {
            let text = answer.text().await.unwrap_or_default();
            bar.abandon();
            return Err(SimulateError::Refused {
                status,
                step: p.step.event(),
                body: text.chars().take(300).collect(),
            });
        }
        bar.set_position(u64::from(p.progress));
        bar.suspend(|| {
            println!(
                "{:>5}s  {:<22} {:>3}%  200",
                p.at,
                p.step.event(),
                p.progress
            )
        });
    }
    bar.finish_with_message("print complete, bed cooled down");
    Ok(steps.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_a_whole_print_in_order() {
        let p = plan();
        let names: Vec<_> = p.iter().map(|s| s.step.event()).collect();
        assert_eq!(
            names,
            [
                "started",
                "first_layer_complete",
                "progress",
                "progress",
                "progress",
                "progress",
                "progress",
                "paused",
                "resumed",
                "progress",
                "progress",
                "progress",
                "progress",
                "complete",
                "bed_cooldown_complete"
            ]
        );
        let progress: Vec<_> = p
            .iter()
            .filter(|s| s.step == Step::Progress)
            .map(|s| s.progress)
            .collect();
        assert_eq!(progress, [10, 20, 30, 40, 50, 60, 70, 80, 90]);
        assert!(p.windows(2).all(|w| w[0].at <= w[1].at), "{p:?}");
        assert_eq!(p[13].progress, 100);
        assert_eq!(p[14].at, PRINT_SECS + PAUSE_SECS + COOLDOWN_SECS);
    }

    #[test]
    fn bodies_carry_what_each_dialect_sends() {
        let print = Print {
            printer: "Sim".into(),
            print_id: "p1".into(),
            file: "f.gcode".into(),
            secret: Some("s3".into()),
            snapshot_url: None,
        };
        let p = plan();
        let oe = body(Dialect::Octoeverywhere, &print, &p[2]);
        assert_eq!(oe["EventType"], 6);
        assert_eq!(oe["Progress"], 10);
        assert_eq!(oe["TimeRemainingSec"], 3240);
        assert_eq!(oe["SecretKey"], "s3");
        assert_eq!(oe["CurrentLayer"], 24);
        let op = body(Dialect::Octoprint, &print, &p[2]);
        assert_eq!(op["topic"], "Print Progress");
        assert_eq!(op["progress"]["completion"], 10);
        assert_eq!(op["apiSecret"], "s3");
        let cool = body(Dialect::Octoeverywhere, &print, &p[14]);
        assert_eq!(cool["EventType"], 15);
        assert!(cool.get("PrintId").is_none());
    }
}
