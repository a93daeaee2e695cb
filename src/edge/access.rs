//! Who may fetch what: public → anyone; protected → a valid `X-Twilio-Signature` by the
//! owning account's primary or secondary auth token; private → nobody.
//!
//! The tokens are held in memory, read at start and again whenever the change feed reports an
//! Account or API key changed (feed.rs), so token rotation with `sigil account token …`
//! reaches every edge within a second without any lookup on the request path.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::accounts::AccountData;
use crate::manifest::Visibility;
use crate::signature::{is_valid, Payload, SigningKey, Url};
use crate::store::{Kind, Metadata, StoreError};

/// An Account SID's signing keys (foldhash: the keys are the store's SIDs, not a client's).
type Keys = HashMap<String, Vec<SigningKey>, foldhash::fast::RandomState>;

/// Auth tokens by Account SID.
#[derive(Default)]
pub struct Tokens {
    map: ArcSwap<Keys>,
    /// The same tokens as text, for the edge's route snapshot (writers only).
    text: std::sync::Mutex<HashMap<String, Vec<String>>>,
}

impl Tokens {
    /// Re-reads every account's tokens.
    pub fn refresh(&self, store: &dyn Metadata) -> Result<(), StoreError> {
        let mut text = HashMap::new();
        for rec in store.scan(Kind::Account)? {
            let data: AccountData = rec.decode()?;
            let mut tokens = vec![data.auth_token];
            tokens.extend(data.secondary_auth_token);
            text.insert(rec.sid, tokens);
        }
        self.replace(text);
        Ok(())
    }

    /// Puts these tokens (Account SID → primary, then secondary) in place of all others.
    pub fn replace(&self, text: HashMap<String, Vec<String>>) {
        let map = text
            .iter()
            .map(|(sid, tokens)| {
                (
                    sid.clone(),
                    tokens.iter().map(|t| SigningKey::new(t)).collect(),
                )
            })
            .collect();
        let mut held = self.text.lock().unwrap_or_else(|p| p.into_inner());
        self.map.store(Arc::new(map));
        *held = text;
    }

    /// The tokens as text (Account SID → primary, then secondary).
    pub fn export(&self) -> HashMap<String, Vec<String>> {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The primary auth token of `account_sid` (what a Function's `context.AUTH_TOKEN` is).
    pub fn primary(&self, account_sid: &str) -> Option<String> {
        let text = self.text.lock().unwrap_or_else(|p| p.into_inner());
        text.get(account_sid)?.first().cloned()
    }

    /// Checks a signature for `account_sid`.
    fn valid(
        &self,
        account_sid: &str,
        url: &Url<'_>,
        payload: Payload<'_>,
        signature: &str,
    ) -> bool {
        let map = self.map.load();
        let Some(tokens) = map.get(account_sid) else {
            return false;
        };
        is_valid(tokens, url, payload, signature)
    }
}

/// The access decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Serve it.
    Allowed,
    /// 403: private.
    Private,
    /// 403: protected, and the signature is missing.
    MissingSignature,
    /// 403: protected, and the signature is wrong.
    BadSignature,
}

/// What a protected request offers as proof of Twilio's signature (borrowing the request).
pub struct Proof<'a> {
    /// The URL as the client asked for it (scheme, host as sent, raw path and query); `None`
    /// when those make no absolute URL, which no signature matches.
    pub url: Option<Url<'a>>,
    /// What was signed besides it.
    pub payload: OwnedPayload,
    /// The `X-Twilio-Signature` header, if any.
    pub signature: Option<&'a HeaderValue>,
}

/// An owned [`Payload`].
pub enum OwnedPayload {
    /// Form parameters (none for a GET).
    Form(Vec<(String, String)>),
    /// A non-form body, checked through `bodySHA256`.
    Body(bytes::Bytes),
}

/// Decides access to an asset of `account_sid` with `visibility`; `proof` matters only for
/// protected assets (callers build it, and read the body, only then).
pub fn decide(
    tokens: &Tokens,
    account_sid: &str,
    visibility: Visibility,
    proof: Option<&Proof<'_>>,
) -> Access {
    match visibility {
        Visibility::Public => Access::Allowed,
        Visibility::Private => Access::Private,
        Visibility::Protected => {
            let Some((p, signature)) = proof.and_then(|p| Some((p, p.signature?.to_str().ok()?)))
            else {
                return Access::MissingSignature;
            };
            let Some(url) = &p.url else {
                return Access::BadSignature;
            };
            let payload = match &p.payload {
                OwnedPayload::Form(params) => Payload::Form(params),
                OwnedPayload::Body(body) => Payload::Body(body),
            };
            if tokens.valid(account_sid, url, payload, signature) {
                Access::Allowed
            } else {
                Access::BadSignature
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header value of `token`'s signature of a GET of `url`.
    fn signed(token: &str, url: &str) -> HeaderValue {
        let signed = crate::signature::signed_string(url, &[]);
        HeaderValue::from_str(&crate::signature::sign(token, &signed)).expect("base64")
    }

    fn proof<'a>(url: &'a str, signature: &'a HeaderValue) -> Proof<'a> {
        Proof {
            url: Url::parse(url),
            payload: OwnedPayload::Form(Vec::new()),
            signature: Some(signature),
        }
    }

    #[test]
    fn tokens_are_read_from_the_store_and_exported_as_text() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::SqliteStore::open(&dir.path().join("m.db")).expect("store");
        let (sid, token) = crate::accounts::create(&store, "t", None, None).expect("account");
        let tokens = Tokens::default();
        tokens.refresh(&store).expect("refresh");
        assert_eq!(
            tokens.export(),
            HashMap::from([(sid.clone(), vec![token.clone()])])
        );
        // The primary token is what a Function's context.AUTH_TOKEN is.
        assert_eq!(tokens.primary(&sid), Some(token.clone()));
        assert_eq!(tokens.primary("AC9"), None);
        let header = signed(&token, "https://a.localhost/x");
        let signed = proof("https://a.localhost/x", &header);
        let check = |tokens: &Tokens| decide(tokens, &sid, Visibility::Protected, Some(&signed));
        assert_eq!(check(&tokens), Access::Allowed);
        // Replaced whole: what is not given is gone.
        tokens.replace(HashMap::from([("AC2".to_owned(), vec!["x".to_owned()])]));
        assert_eq!(
            tokens.export(),
            HashMap::from([("AC2".to_owned(), vec!["x".to_owned()])])
        );
        assert_eq!(check(&tokens), Access::BadSignature);
        tokens.replace(HashMap::from([(
            "AC3".to_owned(),
            vec!["first".to_owned(), "second".to_owned()],
        )]));
        assert_eq!(tokens.primary("AC3").as_deref(), Some("first"));
    }

    /// Every visibility against every kind of proof: a valid signature opens only what is
    /// protected and owned by the account whose token made it.
    #[test]
    fn decisions() {
        let tokens = Tokens::default();
        tokens.replace(HashMap::from([
            ("AC1".to_owned(), vec!["one".to_owned()]),
            ("AC2".to_owned(), vec!["two".to_owned(), "two-b".to_owned()]),
        ]));
        let url = "https://a.localhost/x";
        let [one, two, two_b, wrong, empty] =
            ["one", "two", "two-b", "wrong", ""].map(|t| signed(t, url));
        let none = Proof {
            signature: None,
            ..proof(url, &one)
        };
        // The right signature, but the request made no absolute URL.
        let no_url = Proof {
            url: None,
            ..proof(url, &one)
        };
        use Access::{Allowed, BadSignature, MissingSignature};
        use Visibility::{Protected, Public};
        for (account, visibility, proof, want) in [
            ("AC1", Public, None, Allowed),
            ("AC1", Public, Some(proof(url, &wrong)), Allowed),
            ("AC1", Visibility::Private, None, Access::Private),
            // A valid signature never opens a private asset.
            (
                "AC1",
                Visibility::Private,
                Some(proof(url, &one)),
                Access::Private,
            ),
            ("AC1", Protected, None, MissingSignature),
            ("AC1", Protected, Some(none), MissingSignature),
            ("AC1", Protected, Some(no_url), BadSignature),
            ("AC1", Protected, Some(proof(url, &one)), Allowed),
            ("AC2", Protected, Some(proof(url, &two_b)), Allowed),
            ("AC1", Protected, Some(proof(url, &wrong)), BadSignature),
            // Another account's token, and an account with no tokens here.
            ("AC1", Protected, Some(proof(url, &two)), BadSignature),
            ("AC9", Protected, Some(proof(url, &one)), BadSignature),
            ("AC9", Protected, Some(proof(url, &empty)), BadSignature),
        ] {
            assert_eq!(
                decide(&tokens, account, visibility, proof.as_ref()),
                want,
                "{account} {visibility:?}"
            );
        }
    }
}
