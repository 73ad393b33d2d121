//! `switchboard`: every Switchboard service in one process on the embedded engine (the
//! in-memory bus and store), so a newcomer sees it working with one command and nothing
//! else installed. Auth stays on: when no key is configured, a secret is generated for the
//! run and a ready-to-use development token is printed.
//!
//! Contract: [`Standalone::bind`] prepares everything (bus, store, keys, the gateway's
//! listener); [`Standalone::serve`] runs until the token is cancelled and drains like the
//! cluster gateway does.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth::{Claims, Issuer, Role};
use gateway::{Config, Gateway, RunError, StartError};
use rand::Rng;
use settings::Secret;
use tokio_util::sync::CancellationToken;

/// How long the printed development token stays valid.
const DEV_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a user needs to talk to the running process.
#[derive(Debug, Clone)]
pub struct Access {
    /// The gateway's HTTP/WebSocket address.
    pub addr: SocketAddr,
    /// A development token allowed to subscribe and publish everywhere.
    pub dev_token: String,
    /// The API key for `POST /api/ws/publish`.
    pub api_key: String,
}

/// The whole system in one process, bound and ready to serve.
pub struct Standalone {
    gateway: Gateway,
    access: Access,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Standalone {
    /// Fills in generated secrets where none are configured, connects the bus and store
    /// (in-memory unless URLs are configured) and binds the gateway.
    ///
    /// # Errors
    /// Any [`StartError`] of the gateway.
    pub async fn bind(mut config: Config) -> Result<Self, StartError> {
        let generated_secret = config.auth.hmac_secret.is_none()
            && config.auth.public_key_pem.is_none()
            && config.auth.public_key_file.is_none();
        if generated_secret {
            config.auth.hmac_secret = Some(Secret::new(random_secret()));
        }
        let api_key = match &config.auth.api_key {
            Some(key) => key.expose().to_owned(),
            None => {
                let key = random_secret();
                config.auth.api_key = Some(Secret::new(key.clone()));
                key
            }
        };
        let dev_token = match &config.auth.hmac_secret {
            Some(secret) => issue_dev_token(secret.expose().as_bytes()),
            None => String::from(
                "(tokens come from your own issuer: auth.public_key_pem is configured)",
            ),
        };
        let bus = gateway::connect_bus(&config).await?;
        let store = gateway::connect_store(&config).await?;
        let gateway = Gateway::bind(config, bus, store).await?;
        let access = Access {
            addr: gateway.local_addr(),
            dev_token,
            api_key,
        };
        Ok(Self { gateway, access })
    }

    /// Returns the address, development token and API key of this process.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Serves until `shutdown` is cancelled, then drains.
    ///
    /// # Errors
    /// [`RunError`] when the gateway fails.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), RunError> {
        self.gateway.serve(shutdown).await
    }
}

fn issue_dev_token(secret: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let claims = Claims {
        sub: "dev".to_owned(),
        exp: (now + DEV_TOKEN_LIFETIME).as_secs(),
        iat: Some(now.as_secs()),
        rooms: vec![">".to_owned()],
        publish: vec![">".to_owned()],
        role: Role::Admin,
        node_id: None,
    };
    Issuer::hs256(secret)
        .issue(&claims)
        .unwrap_or_else(|error| format!("(token could not be issued: {error})"))
}
