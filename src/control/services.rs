//! Services (`ZS`): CONTRACT.md §4.1. Addressable by SID or by `unique_name`.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now};
use crate::sid::{random_below, Prefix};
use crate::store::{Kind, ListQuery, Record, Write};

/// The longest Service unique name [SPEC].
const MAX_UNIQUE_NAME: usize = 50;

/// The stored fields of a Service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceData {
    /// Unique per account, a DNS label, permanent.
    pub unique_name: String,
    /// Free text.
    pub friendly_name: String,
    /// Whether functions get account credentials.
    pub include_credentials: bool,
    /// Whether the Console may edit it.
    pub ui_editable: bool,
    /// `{unique_name}-{4 digits}`, lower case, unique across the server.
    pub domain_base: String,
    /// Last change, Unix seconds.
    pub date_updated: i64,
}

/// The unique key of a Service's name within its account (names compare case-insensitively,
/// since they become host names).
fn name_key(account: &str, unique_name: &str) -> String {
    format!("service:{account}:{}", unique_name.to_ascii_lowercase())
}

/// Whether `name` is a DNS label of at most 50 characters.
fn valid_unique_name(name: &str) -> bool {
    name.len() <= MAX_UNIQUE_NAME && crate::config::is_dns_name(name) && !name.contains('.')
}

impl ControlPlane {
    /// Resolves `{Sid}` / `{ServiceSid}`: a `ZS` SID or the Service's unique name.
    pub(super) async fn service(
        &self,
        ctx: &Ctx,
        id: &str,
    ) -> Result<(Record, ServiceData), ApiError> {
        let rec = if id.starts_with(Prefix::Service.as_str()) && Prefix::Service.parse(id).is_some()
        {
            self.load(ctx, Kind::Service, Prefix::Service, id, None)
                .await?
        } else {
            let key = name_key(&ctx.account, id);
            let rec = self.db(move |s| s.find_unique(&key)).await?;
            match rec {
                Some(r) if r.kind == Kind::Service && r.account_sid == ctx.account => r,
                _ => return Err(ctx.not_found()),
            }
        };
        let data = rec.decode()?;
        Ok((rec, data))
    }

    fn render_service(&self, rec: &Record, d: &ServiceData) -> Value {
        let path = format!("/Services/{}", rec.sid);
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "friendly_name": d.friendly_name,
            "unique_name": d.unique_name,
            "include_credentials": d.include_credentials,
            "ui_editable": d.ui_editable,
            "domain_base": d.domain_base,
            "date_created": iso(rec.created),
            "date_updated": iso(d.date_updated),
            "url": self.url(&path),
            "links": {
                "environments": self.url(&format!("{path}/Environments")),
                "functions": self.url(&format!("{path}/Functions")),
                "assets": self.url(&format!("{path}/Assets")),
                "builds": self.url(&format!("{path}/Builds")),
            }
        })
    }

    pub(super) async fn list_services(&self, ctx: &Ctx) -> ApiResult {
        self.list_page(
            ctx,
            Kind::Service,
            None,
            "services",
            ListFilter::default(),
            |r| Ok(self.render_service(r, &r.decode()?)),
        )
        .await
    }

    pub(super) async fn fetch_service(&self, ctx: &Ctx, id: &str) -> ApiResult {
        let (rec, data) = self.service(ctx, id).await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_service(&rec, &data),
        ))
    }

    pub(super) async fn create_service(&self, ctx: &Ctx, form: &super::Params) -> ApiResult {
        let unique_name = form.required("UniqueName", MAX_UNIQUE_NAME)?;
        if !valid_unique_name(unique_name) {
            return Err(ApiError::bad_param(format!(
                "Invalid value for parameter UniqueName: {unique_name:?} must be letters, digits and dashes (not at either end), at most {MAX_UNIQUE_NAME} characters"
            )));
        }
        let friendly_name = form.required("FriendlyName", 255)?;
        let include_credentials = form.boolean("IncludeCredentials")?.unwrap_or(true);
        let ui_editable = form.boolean("UiEditable")?.unwrap_or(false);
        let sid = Prefix::Service.generate();
        let created = now();
        let mut data = ServiceData {
            unique_name: unique_name.to_owned(),
            friendly_name: friendly_name.to_owned(),
            include_credentials,
            ui_editable,
            domain_base: String::new(),
            date_updated: created,
        };
        // The 4 digits are drawn until the domain base is free across the whole server; the
        // store's unique keys decide between concurrent requests.
        for _ in 0..100 {
            data.domain_base = format!(
                "{}-{:04}",
                unique_name.to_ascii_lowercase(),
                random_below(10_000)
            );
            let mut rec = Record::new(Kind::Service, sid.clone(), ctx.account.clone(), None, &data);
            rec.created = created;
            rec.unique = vec![
                name_key(&ctx.account, unique_name),
                format!("domain_base:{}", data.domain_base),
            ];
            match self.commit(vec![Write::Insert(rec.clone())]).await? {
                Ok(()) => {
                    return Ok(json_response(
                        StatusCode::CREATED,
                        &self.render_service(&rec, &data),
                    ))
                }
                Err(key) if key.starts_with("service:") => {
                    return Err(ApiError::conflict(format!(
                        "Service with UniqueName {unique_name:?} already exists"
                    )))
                }
                // The domain base is taken: draw other digits.
                Err(_) => continue,
            }
        }
        Err(ApiError::conflict(format!(
            "No free domain is left for UniqueName {unique_name:?}; choose another name"
        )))
    }

    pub(super) async fn update_service(
        &self,
        ctx: &Ctx,
        id: &str,
        form: &super::Params,
    ) -> ApiResult {
        super::retrying(|| async move {
            let (mut rec, mut data) = self.service(ctx, id).await?;
            if let Some(name) = form.text("FriendlyName", 255)? {
                if name.is_empty() {
                    return Err(ApiError::bad_param(
                        "Invalid value for parameter FriendlyName: must not be empty",
                    ));
                }
                data.friendly_name = name.to_owned();
            }
            if let Some(v) = form.boolean("IncludeCredentials")? {
                data.include_credentials = v;
            }
            if let Some(v) = form.boolean("UiEditable")? {
                data.ui_editable = v;
            }
            data.date_updated = now();
            rec.encode(&data);
            let write = rec.clone();
            self.db(move |s| s.commit(vec![Write::Update(write)]))
                .await?;
            // IncludeCredentials is read at the edge, which learns of it through the
            // Service's Environments (the change feed follows Environments).
            let (account, service) = (rec.account_sid.clone(), rec.sid.clone());
            let envs = self
                .db(move |s| s.list(&ListQuery::children(Kind::Environment, &account, &service)))
                .await?;
            for env in envs {
                self.touch_environment(&env.sid).await;
            }
            self.changed().await;
            Ok(json_response(
                StatusCode::OK,
                &self.render_service(&rec, &data),
            ))
        })
        .await
    }

    pub(super) async fn delete_service(&self, ctx: &Ctx, id: &str) -> ApiResult {
        super::retrying(|| async move {
            let (rec, _) = self.service(ctx, id).await?;
            let sid = rec.sid.clone();
            self.db(move |s| s.commit(vec![Write::Delete(sid)])).await?;
            // Its Environments went with it (a cascade), into the feed too.
            self.changed().await;
            Ok(super::no_content())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::valid_unique_name;

    #[test]
    fn unique_names_are_dns_labels() {
        for ok in ["a", "my-service", "Svc1", &"a".repeat(50)] {
            assert!(valid_unique_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a.b", "a_b", "a b", "ünï", &"a".repeat(51)] {
            assert!(!valid_unique_name(bad), "{bad}");
        }
    }
}
