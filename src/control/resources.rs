//! Functions and Assets (`ZH`): CONTRACT.md §4.3. The two are the same resource with
//! different names, so one set of handlers serves both, told apart by [`ResourceKind`].

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now};
use crate::sid::Prefix;
use crate::store::{Kind, Record, Write};

/// Which of the two twin resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// `/Functions`.
    Function,
    /// `/Assets`.
    Asset,
}

impl ResourceKind {
    /// The store kind of the resource.
    pub fn kind(self) -> Kind {
        match self {
            ResourceKind::Function => Kind::Function,
            ResourceKind::Asset => Kind::Asset,
        }
    }

    /// The store kind of its versions.
    pub fn version_kind(self) -> Kind {
        match self {
            ResourceKind::Function => Kind::FunctionVersion,
            ResourceKind::Asset => Kind::AssetVersion,
        }
    }

    /// The path segment (`Functions` / `Assets`).
    pub fn segment(self) -> &'static str {
        match self {
            ResourceKind::Function => "Functions",
            ResourceKind::Asset => "Assets",
        }
    }

    /// The list key (`functions` / `assets`).
    pub fn list_key(self) -> &'static str {
        match self {
            ResourceKind::Function => "functions",
            ResourceKind::Asset => "assets",
        }
    }

    /// The versions' list key, which is also the resource's `links` key.
    pub fn versions_key(self) -> &'static str {
        match self {
            ResourceKind::Function => "function_versions",
            ResourceKind::Asset => "asset_versions",
        }
    }

    /// The field naming the parent in a version (`function_sid` / `asset_sid`).
    pub fn parent_field(self) -> &'static str {
        match self {
            ResourceKind::Function => "function_sid",
            ResourceKind::Asset => "asset_sid",
        }
    }
}

/// The stored fields of a Function or Asset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceData {
    /// Free text (not unique; the toolkit matches on it).
    pub friendly_name: String,
    /// Last change, Unix seconds.
    pub date_updated: i64,
}

const MAX_FRIENDLY_NAME: usize = 255;

impl ControlPlane {
    /// Resolves a Service and one of its Functions or Assets.
    pub(super) async fn resource(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        id: &str,
    ) -> Result<(Record, Record), ApiError> {
        let (service, _) = self.service(ctx, svc).await?;
        let rec = self
            .load(ctx, kind.kind(), Prefix::Resource, id, Some(&service.sid))
            .await?;
        Ok((service, rec))
    }

    pub(super) fn resource_path(kind: ResourceKind, rec: &Record) -> String {
        format!(
            "/Services/{}/{}/{}",
            rec.parent_sid.as_deref().unwrap_or_default(),
            kind.segment(),
            rec.sid
        )
    }

    fn render_resource(&self, kind: ResourceKind, rec: &Record, d: &ResourceData) -> Value {
        let path = Self::resource_path(kind, rec);
        let mut links = serde_json::Map::new();
        links.insert(
            kind.versions_key().to_owned(),
            Value::String(self.url(&format!("{path}/Versions"))),
        );
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": rec.parent_sid,
            "friendly_name": d.friendly_name,
            "date_created": iso(rec.created),
            "date_updated": iso(d.date_updated),
            "url": self.url(&path),
            "links": links,
        })
    }

    pub(super) async fn list_resources(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
    ) -> ApiResult {
        let (service, _) = self.service(ctx, svc).await?;
        self.list_page(
            ctx,
            kind.kind(),
            Some(service.sid),
            kind.list_key(),
            ListFilter::default(),
            |r| Ok(self.render_resource(kind, r, &r.decode()?)),
        )
        .await
    }

    pub(super) async fn fetch_resource(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        id: &str,
    ) -> ApiResult {
        let (_, rec) = self.resource(ctx, svc, kind, id).await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_resource(kind, &rec, &rec.decode()?),
        ))
    }

    pub(super) async fn create_resource(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        form: &super::Params,
    ) -> ApiResult {
        let friendly_name = form.required("FriendlyName", MAX_FRIENDLY_NAME)?;
        let (service, _) = self.service(ctx, svc).await?;
        let created = now();
        let data = ResourceData {
            friendly_name: friendly_name.to_owned(),
            date_updated: created,
        };
        let mut rec = Record::new(
            kind.kind(),
            Prefix::Resource.generate(),
            ctx.account.clone(),
            Some(service.sid),
            &data,
        );
        rec.created = created;
        let write = rec.clone();
        self.db(move |s| s.commit(vec![Write::Insert(write)]))
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &self.render_resource(kind, &rec, &data),
        ))
    }

    pub(super) async fn update_resource(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        id: &str,
        form: &super::Params,
    ) -> ApiResult {
        let friendly_name = form.required("FriendlyName", MAX_FRIENDLY_NAME)?;
        super::retrying(|| async move {
            let (_, mut rec) = self.resource(ctx, svc, kind, id).await?;
            let data = ResourceData {
                friendly_name: friendly_name.to_owned(),
                date_updated: now(),
            };
            rec.encode(&data);
            let write = rec.clone();
            self.db(move |s| s.commit(vec![Write::Update(write)]))
                .await?;
            Ok(json_response(
                StatusCode::OK,
                &self.render_resource(kind, &rec, &data),
            ))
        })
        .await
    }

    pub(super) async fn delete_resource(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        id: &str,
    ) -> ApiResult {
        super::retrying(|| async move {
            let (_, rec) = self.resource(ctx, svc, kind, id).await?;
            // Its versions go with it; Builds keep their own copy of what they hold (the manifest).
            self.db(move |s| s.commit(vec![Write::Delete(rec.sid)]))
                .await?;
            Ok(super::no_content())
        })
        .await
    }
}
