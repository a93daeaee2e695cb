//! A small client of the Serverless v1 API over HTTP (any sigil, local or remote), used by
//! `sigil deploy`, `deployments`, `rollback` and `promote`.

use reqwest::header::HeaderMap;
use serde_json::Value;

/// An API failure, worded for a person.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("{status} {message} (Twilio error {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Twilio code, or the status.
        code: u64,
        /// The message.
        message: String,
    },
    /// The API could not be reached or answered nonsense.
    #[error("{0}")]
    Transport(String),
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
    base: String,
    sid: String,
    token: String,
}

fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e.to_string())
}

impl Client {
    /// A client of the API at `api_url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(api_url: &str, sid: &str, token: &str) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(transport)?;
        Ok(Client {
            http,
            base: format!("{}/v1", api_url.trim_end_matches('/')),
            sid: sid.to_owned(),
            token: token.to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<(HeaderMap, Value), ClientError> {
        let resp = rb
            .basic_auth(&self.sid, Some(&self.token))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(transport)?;
        let json: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            return Err(ClientError::Api {
                status,
                code: json["code"].as_u64().unwrap_or(u64::from(status)),
                message: json["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| json.to_string()),
            });
        }
        Ok((headers, json))
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
            .map_err(transport)?;
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
