//! Command-line options, parsed by hand: `loadgen <scenario> [--key value | --key=value]…`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;

/// The usage text printed for `--help` and on option errors.
pub const USAGE: &str = include_str!("usage.txt");

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// N subscribers on one room, M messages.
    Fanout,
    /// N subscribers over K rooms, M messages spread over the rooms.
    Rooms,
    /// N idle subscribers held for a while.
    Idle,
    /// N connections as fast as possible.
    ConnectRate,
}

impl Scenario {
    /// Returns the name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Rooms => "rooms",
            Scenario::Idle => "idle",
            Scenario::ConnectRate => "connect-rate",
        }
    }
}

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The Switchboard gateway: JSON subprotocol, messages published as `RoomEnvelope`s.
    Switchboard,
    /// nats-server's WebSocket listener, NATS text protocol, messages published as plain JSON.
    NatsWs,
}

impl Target {
    /// Returns the name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Switchboard => "switchboard",
            Target::NatsWs => "nats-ws",
        }
    }
}

/// This process's part in a multi-process run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Subscribers and publisher in this one process.
    All,
    /// Connects its share of subscribers, announces them, reports its figures over NATS.
    Subscriber,
    /// Waits for the subscriber processes, publishes, merges their reports.
    Publisher,
}

/// Everything a run needs; [`Options::parse`] builds it from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// What to measure.
    pub scenario: Scenario,
    /// What to load.
    pub target: Target,
    /// This process's part.
    pub role: Role,
    /// WebSocket endpoints; connection `i` uses `urls[i % len]`.
    pub urls: Vec<String>,
    /// NATS URL for publishing and coordination.
    pub nats_url: String,
    /// HS256 secret for the per-connection JWTs (switchboard).
    pub secret: Option<Vec<u8>>,
    /// Token for nats-server (CONNECT `auth_token` and the publisher).
    pub nats_token: Option<String>,
    /// Source addresses; connection `i` binds `source_ips[i % len]`.
    pub source_ips: Vec<IpAddr>,
    /// Connections in this process.
    pub clients: usize,
    /// Global index of this process's first connection (room assignment, token subjects).
    pub client_offset: usize,
    /// Messages to publish.
    pub messages: u64,
    /// Messages per second; 0 publishes as fast as possible.
    pub rate: f64,
    /// Target size of one delivered message.
    pub payload_bytes: usize,
    /// Rooms of the rooms scenario.
    pub rooms: usize,
    /// Room of the single-room scenarios.
    pub room: String,
    /// Connection attempts in flight.
    pub concurrency: usize,
    /// Idle: how long the connections are held.
    pub duration: Duration,
    /// Idle: the server process to sample.
    pub server_pid: Option<u32>,
    /// Idle: wait after connecting before sampling the server's RSS.
    pub settle: Duration,
    /// Tokio worker threads (the binary builds the runtime).
    pub threads: usize,
    /// Bound on the whole run.
    pub timeout: Duration,
    /// Stop waiting once nothing arrived for this long after publishing ended.
    pub stall_timeout: Duration,
    /// Bound on one connection's handshake.
    pub connect_timeout: Duration,
    /// Names the coordination subjects `loadgen.<run_id>.*` and the token subjects.
    pub run_id: String,
    /// Publisher role: subscriber processes to wait for.
    pub expect_subscribers: usize,
    /// Bus subject prefix (`sb`).
    pub subject_prefix: String,
}

impl Options {
    /// Returns defaults for `scenario` against `target`.
    pub fn new(scenario: Scenario, target: Target) -> Self {
        let default_url = match target {
            Target::Switchboard => "ws://127.0.0.1:8000",
            Target::NatsWs => "ws://127.0.0.1:8080",
        };
        Options {
            scenario,
            target,
            role: Role::All,
            urls: vec![default_url.to_owned()],
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            secret: None,
            nats_token: None,
            source_ips: Vec::new(),
            clients: 100,
            client_offset: 0,
            messages: 100,
            rate: 0.0,
            payload_bytes: 200,
            rooms: 10,
            room: "bench.fanout".to_owned(),
            concurrency: 200,
            duration: Duration::from_secs(30),
            server_pid: None,
            settle: Duration::from_secs(2),
            threads: 1,
            timeout: Duration::from_secs(120),
            stall_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
            run_id: random_run_id(),
            expect_subscribers: 1,
            subject_prefix: protocol::subject::DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Parses `args` (without the program name).
    ///
    /// # Errors
    /// [`Error::Options`] naming the first bad argument.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Self, Error> {
        let mut args = args.into_iter();
        let scenario = match args.next().as_deref() {
            Some("fanout") => Scenario::Fanout,
            Some("rooms") => Scenario::Rooms,
            Some("idle") => Scenario::Idle,
            Some("connect-rate") => Scenario::ConnectRate,
            Some(other) => return Err(bad(format!("unknown scenario {other:?}"))),
            None => return Err(bad("missing scenario".to_owned())),
        };
        let mut pairs = Vec::new();
        while let Some(arg) = args.next() {
            let Some(key) = arg.strip_prefix("--") else {
                return Err(bad(format!("unexpected argument {arg:?}")));
            };
            if key == "json" {
                continue;
            }
            let (key, value) = match key.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => {
                    let value = args
                        .next()
                        .ok_or_else(|| bad(format!("--{key} needs a value")))?;
                    (key.to_owned(), value)
                }
            };
            pairs.push((key, value));
        }
        // The target decides the default URL, so it is read first.
        let target = match pairs.iter().rev().find(|(key, _)| key == "target") {
            None => Target::Switchboard,
            Some((_, value)) => match value.as_str() {
                "switchboard" => Target::Switchboard,
                "nats-ws" | "nats" => Target::NatsWs,
                other => return Err(bad(format!("unknown target {other:?}"))),
            },
        };
        let mut options = Options::new(scenario, target);
        for (key, value) in pairs {
            options.set(&key, &value)?;
        }
        options.validate()?;
        Ok(options)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "target" => {}
            "url" | "urls" => self.urls = list(value),
            "nats" => self.nats_url = value.to_owned(),
            "secret" => self.secret = Some(value.as_bytes().to_vec()),
            "nats-token" => self.nats_token = Some(value.to_owned()),
            "source-ips" => {
                self.source_ips = list(value)
                    .iter()
                    .map(|ip| ip.parse().map_err(|_| bad(format!("bad source ip {ip:?}"))))
                    .collect::<Result<_, _>>()?;
            }
            "clients" => self.clients = number(key, value)?,
            "client-offset" => self.client_offset = number(key, value)?,
            "messages" => self.messages = number(key, value)?,
            "rate" => self.rate = number(key, value)?,
            "payload-bytes" => self.payload_bytes = number(key, value)?,
            "rooms" => self.rooms = number(key, value)?,
            "room" => self.room = value.to_owned(),
            "concurrency" => self.concurrency = number(key, value)?,
            "duration" | "hold" => self.duration = duration(key, value)?,
            "server-pid" => self.server_pid = Some(number(key, value)?),
            "settle" => self.settle = duration(key, value)?,
            "threads" => self.threads = number(key, value)?,
            "timeout" => self.timeout = duration(key, value)?,
            "stall-timeout" => self.stall_timeout = duration(key, value)?,
            "connect-timeout" => self.connect_timeout = duration(key, value)?,
            "role" => {
                self.role = match value {
                    "all" => Role::All,
                    "subscriber" => Role::Subscriber,
                    "publisher" => Role::Publisher,
                    other => return Err(bad(format!("unknown role {other:?}"))),
                }
            }
            "run-id" => self.run_id = value.to_owned(),
            "expect-subscribers" => self.expect_subscribers = number(key, value)?,
            "subject-prefix" => self.subject_prefix = value.to_owned(),
            other => return Err(bad(format!("unknown option --{other}"))),
        }
        Ok(())
    }

    /// Checks the combination of options.
    ///
    /// # Errors
    /// [`Error::Options`] listing every problem.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        if self.urls.is_empty() {
            problems.push("--urls is empty".to_owned());
        }
        if self.target == Target::Switchboard
            && self.role != Role::Publisher
            && self.secret.as_ref().is_none_or(|secret| secret.len() < 32)
        {
            problems.push("--secret of at least 32 bytes is needed for switchboard".to_owned());
        }
        if self.concurrency == 0 || self.threads == 0 {
            problems.push("--concurrency and --threads must be at least 1".to_owned());
        }
        if self.scenario == Scenario::Rooms && self.rooms == 0 {
            problems.push("--rooms must be at least 1".to_owned());
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            problems.push("--rate must be a non-negative number".to_owned());
        }
        let multi_process = self.role != Role::All;
        if multi_process && !matches!(self.scenario, Scenario::Fanout | Scenario::Rooms) {
            problems
                .push("--role subscriber/publisher exists for fanout and rooms only".to_owned());
        }
        if self.role == Role::Publisher && self.expect_subscribers == 0 {
            problems.push("--expect-subscribers must be at least 1".to_owned());
        }
        if self.clients > 19_000 {
            problems.push(
                "--clients above 19000 exceeds one process's 20000-file limit; use several --role subscriber processes".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(bad(problems.join("; ")))
        }
    }

    /// Returns the room connection `global_index` joins.
    pub(crate) fn room_of(&self, global_index: usize) -> String {
        match self.scenario {
            Scenario::Rooms => rooms_room(global_index % self.rooms.max(1)),
            _ => self.room.clone(),
        }
    }

    /// Returns every room messages are published to, in round-robin order.
    pub(crate) fn publish_rooms(&self) -> Vec<String> {
        match self.scenario {
            Scenario::Rooms => (0..self.rooms).map(rooms_room).collect(),
            _ => vec![self.room.clone()],
        }
    }

    /// Returns how many messages room number `room_index` of [`Self::publish_rooms`] receives.
    pub(crate) fn messages_for_room(&self, room_index: usize) -> u64 {
        let rooms = self.publish_rooms().len() as u64;
        let index = room_index as u64;
        self.messages / rooms + u64::from(index < self.messages % rooms)
    }
}

fn rooms_room(index: usize) -> String {
    format!("bench.r{index}")
}

fn bad(message: String) -> Error {
    Error::Options(message)
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, Error> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| bad(format!("--{key}: {value:?} is not a number")))
}

/// Reads `30`, `30s`, `500ms` or `2m`; a bare number means seconds.
fn duration(key: &str, value: &str) -> Result<Duration, Error> {
    if let Ok(seconds) = value.parse::<f64>()
        && seconds >= 0.0
        && seconds.is_finite()
    {
        return Ok(Duration::from_secs_f64(seconds));
    }
    humantime::parse_duration(value).map_err(|_| bad(format!("--{key}: {value:?} is no duration")))
}

fn random_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Options, Error> {
        Options::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn target_decides_the_default_url_wherever_it_appears() {
        let options = parse("fanout --clients 5 --target nats-ws").unwrap();
        assert_eq!(options.target, Target::NatsWs);
        assert_eq!(options.urls, ["ws://127.0.0.1:8080"]);
        assert_eq!(options.clients, 5);
    }

    #[test]
    fn switchboard_needs_a_long_secret() {
        assert!(parse("fanout --secret short").is_err());
        let options = parse("fanout --secret=0123456789abcdef0123456789abcdef --rate 20").unwrap();
        assert_eq!(options.rate, 20.0);
    }

    #[test]
    fn durations_accept_bare_seconds_and_units() {
        let options =
            parse("idle --target nats-ws --duration 1.5 --timeout 2m --settle 500ms").unwrap();
        assert_eq!(options.duration, Duration::from_millis(1500));
        assert_eq!(options.timeout, Duration::from_secs(120));
        assert_eq!(options.settle, Duration::from_millis(500));
    }

    #[test]
    fn rooms_split_messages_round_robin() {
        let options = parse("rooms --target nats-ws --rooms 3 --messages 10").unwrap();
        let counts: Vec<u64> = (0..3).map(|room| options.messages_for_room(room)).collect();
        assert_eq!(counts, [4, 3, 3]);
        assert_eq!(options.room_of(7), "bench.r1");
    }

    #[test]
    fn unknown_options_and_scenarios_are_refused() {
        assert!(parse("fanout --target nats-ws --bogus 1").is_err());
        assert!(parse("teleport").is_err());
        assert!(parse("idle --target nats-ws --role publisher").is_err());
    }
}
