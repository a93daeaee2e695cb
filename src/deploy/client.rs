//! A small client of the Serverless v1 API over HTTP (any sigil, local or remote), used by
//! `sigil deploy`, `deployments`, `rollback` and `promote`.

use std::sync::{Arc, OnceLock};

use reqwest::header::HeaderMap;
use serde_json::Value;

pub use crate::control::EDGE_PORTS;

/// An API failure, worded for a person: each says what happened once, and where the fix is
/// on the caller's side, what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{status} {message} (Twilio error {code}){hint}", hint = api_hint(.status))]
    Api {
        /// HTTP status.
        status: u16,
        /// Twilio code, or the status.
        code: u64,
        /// The message.
        message: String,
    },
    /// Nothing answered at the API's address.
    #[error("cannot reach the API at {url} — is `sigil serve` running? (--api-url / SIGIL_API_URL says where it listens)")]
    Unreachable {
        /// The API's base URL.
        url: String,
    },
    /// Something answered, but not the Serverless API (e.g. the edge's listener).
    #[error("{url} answered {status} with {what}, not the Serverless API: --api-url must be sigil's API listener (`sigil: API listening on …`, default http://127.0.0.1:8081) or https://serverless.{{domain}} on the edge, not the edge's own address")]
    NotApi {
        /// The API's base URL.
        url: String,
        /// HTTP status of the answer.
        status: u16,
        /// What came instead.
        what: String,
    },
    /// The connection failed in another way (timeout, TLS, a broken response).
    #[error("the API at {url}: {reason}")]
    Transport {
        /// The API's base URL.
        url: String,
        /// What failed, with its causes.
        reason: String,
    },
}

/// The way out of an API error that the caller can fix.
fn api_hint(status: &u16) -> &'static str {
    match *status {
        401 => {
            " — check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or --account-sid / --auth-token)"
        }
        _ => "",
    }
}

impl ClientError {
    /// Whether this is the API's 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// The client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The API's URL as given (for messages).
    api_url: String,
    base: String,
    sid: String,
    token: String,
    /// The edge's ports, as a sigil API tells them ([`EDGE_PORTS`]).
    edge_ports: Arc<OnceLock<String>>,
}

impl Client {
    /// A client of the API at `api_url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(api_url: &str, sid: &str, token: &str) -> Result<Client, ClientError> {
        let api_url = api_url.trim_end_matches('/');
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| ClientError::Transport {
                url: api_url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            api_url: api_url.to_owned(),
            base: format!("{}/v1", api_url.trim_end_matches('/')),
            sid: sid.to_owned(),
            token: token.to_owned(),
            edge_ports: Arc::default(),
        })
    }

    /// A transport failure, worded by what failed.
    fn transport(&self, e: reqwest::Error) -> ClientError {
        let url = self.api_url.clone();
        if e.is_connect() {
            return ClientError::Unreachable { url };
        }
        // reqwest's own text names only the step ("error sending request"); the causes say why.
        let mut reason = if e.is_timeout() {
            "no answer in time".to_owned()
        } else {
            e.to_string()
        };
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !reason.contains(&text) {
                reason = format!("{reason}: {text}");
            }
            cause = c.source();
        }
        ClientError::Transport { url, reason }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(HeaderMap, Value), ClientError> {
        let (sid, token) = (self.sid.as_str(), self.token.as_str());
        let resp = rb
            .basic_auth(sid, Some(token))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(ports) = headers.get(EDGE_PORTS).and_then(|v| v.to_str().ok()) {
            let _ = self.edge_ports.set(ports.to_owned());
        }
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        // The API answers every request with a JSON object (a deletion with nothing); an
        // error object has a `message`. Anything else is some other server.
        let json: Value = match serde_json::from_str(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ if text.is_empty() && status < 400 => Value::Null,
            _ => return Err(self.not_api(status, &headers, &text)),
        };
        if status >= 400 {
            let Some(message) = json["message"].as_str() else {
                return Err(self.not_api(status, &headers, &text));
            };
            return Err(ClientError::Api {
                status,
                code: json["code"].as_u64().unwrap_or(u64::from(status)),
                message: message.to_owned(),
            });
        }
        Ok((headers, json))
    }

    fn not_api(&self, status: u16, headers: &HeaderMap, text: &str) -> ClientError {
        let ctype = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type");
        ClientError::NotApi {
            url: self.api_url.clone(),
            status,
            what: if text.is_empty() {
                "an empty body".to_owned()
            } else {
                format!("a {ctype} body")
            },
        }
    }

    /// The URLs of the site at `domain`: on a sigil, one per edge listener (its scheme and
    /// port, from the API's [`EDGE_PORTS`] header); elsewhere Twilio's `https://{domain}/`.
    pub fn site_urls(&self, domain: &str) -> Vec<String> {
        let urls: Vec<String> = self
            .edge_ports
            .get()
            .map(|ports| {
                ports
                    .split(',')
                    .filter_map(|p| {
                        let (scheme, port) = p.trim().split_once('=')?;
                        let port: u16 = port.parse().ok()?;
                        let default = match scheme {
                            "http" => 80,
                            "https" => 443,
                            _ => return None,
                        };
                        Some(if port == default {
                            format!("{scheme}://{domain}/")
                        } else {
                            format!("{scheme}://{domain}:{port}/")
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if urls.is_empty() {
            vec![format!("https://{domain}/")]
        } else {
            urls
        }
    }

    /// GET a resource.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.send(self.http.get(self.url(path))).await?.1)
    }

    /// GET a resource with its headers.
    pub async fn get_with_headers(&self, path: &str) -> Result<(HeaderMap, Value), ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// GET a resource that may not exist.
    pub async fn find(&self, path: &str) -> Result<Option<Value>, ClientError> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// POST a form.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value, ClientError> {
        Ok(self
            .send(self.http.post(self.url(path)).form(form))
            .await?
            .1)
    }

    /// Every record of a list, following `next_page_url`.
    pub async fn list(&self, path: &str) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        let mut url = self.url(&format!("{path}?PageSize=1000"));
        loop {
            let page = self.get(&url).await?;
            let key = page["meta"]["key"].as_str().unwrap_or_default().to_owned();
            if let Some(items) = page[&key].as_array() {
                out.extend(items.iter().cloned());
            }
            match page["meta"]["next_page_url"].as_str() {
                Some(next) => url = next.to_owned(),
                None => return Ok(out),
            }
        }
    }

    /// Uploads a version (multipart `Path`, `Visibility`, `Content`).
    pub async fn upload(
        &self,
        path: &str,
        url_path: &str,
        visibility: &str,
        content: Vec<u8>,
        filename: String,
        content_type: &str,
    ) -> Result<Value, ClientError> {
        let part = reqwest::multipart::Part::bytes(content)
            .file_name(filename)
            .mime_str(content_type)
            .map_err(|e| self.transport(e))?;
        let form = reqwest::multipart::Form::new()
            .text("Path", url_path.to_owned())
            .text("Visibility", visibility.to_owned())
            .part("Content", part);
        Ok(self
            .send(self.http.post(self.url(path)).multipart(form))
            .await?
            .1)
    }
}
