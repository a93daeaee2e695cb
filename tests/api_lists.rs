//! Lists: PageSize / Page / PageToken, the meta envelope, absolute next/previous URLs that
//! work fetched verbatim, a stable newest-first order.

mod support;

use serde_json::Value;
use support::Sigil;

fn sids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v["sid"].as_str().expect("sid").to_owned())
        .collect()
}

#[test]
fn pages_forward_and_back_through_verbatim_urls() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let created: Vec<String> = (0..7).map(|i| api.service(&format!("svc-{i}"))).collect();
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = "/v1/Services?PageSize=3".to_owned();
    loop {
        let page = api.get(&url).expect(200);
        let meta = &page.json["meta"];
        assert_eq!(meta["key"], "services");
        assert_eq!(meta["page_size"], 3);
        assert_eq!(meta["page"], pages.len());
        assert_eq!(
            meta["first_page_url"],
            format!("{}/v1/Services?PageSize=3&Page=0", sigil.api)
        );
        seen.extend(sids(&page.json, "services"));
        pages.push(page.json.clone());
        match meta["next_page_url"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen, newest_first, "every record once, newest first");
    assert!(pages[0]["meta"]["previous_page_url"].is_null());

    // Back from the last page to the first through previous_page_url.
    let prev = pages[2]["meta"]["previous_page_url"]
        .as_str()
        .expect("prev")
        .to_owned();
    let back = api.get(&prev).expect(200);
    assert_eq!(sids(&back.json, "services"), newest_first[3..6]);
    assert_eq!(back.json["meta"]["page"], 1);
    let prev = back.json["meta"]["previous_page_url"]
        .as_str()
        .expect("prev")
        .to_owned();
    let first = api.get(&prev).expect(200);
    assert_eq!(sids(&first.json, "services"), newest_first[..3]);
    assert_eq!(
        first.json["meta"]["next_page_url"],
        pages[0]["meta"]["next_page_url"]
    );

    // The order is stable: the same query gives the same page.
    assert_eq!(
        api.get("/v1/Services?PageSize=3").expect(200).json,
        pages[0]
    );
    // Page without a token is an offset.
    let p2 = api.get("/v1/Services?PageSize=3&Page=2").expect(200);
    assert_eq!(sids(&p2.json, "services"), newest_first[6..]);
    assert!(p2.json["meta"]["next_page_url"].is_null());
    // A token stays valid when the record it follows is deleted.
    let next = pages[0]["meta"]["next_page_url"]
        .as_str()
        .expect("next")
        .to_owned();
    api.delete(&format!("/v1/Services/{}", newest_first[2]))
        .expect(204);
    assert_eq!(
        sids(&api.get(&next).expect(200).json, "services"),
        newest_first[3..6]
    );
}

#[test]
fn defaults_and_bounds() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let empty = api.get("/v1/Services").expect(200);
    let meta = &empty.json["meta"];
    assert_eq!(meta["page_size"], 50);
    assert_eq!(meta["page"], 0);
    assert!(meta["next_page_url"].is_null());
    assert!(meta["previous_page_url"].is_null());
    assert_eq!(
        meta["url"],
        format!("{}/v1/Services?PageSize=50&Page=0", sigil.api)
    );
    assert_eq!(empty.json["services"], serde_json::json!([]));

    api.get("/v1/Services?PageSize=1000").expect(200);
    api.get("/v1/Services?PageSize=1").expect(200);
    for bad in [
        "PageSize=0",
        "PageSize=1001",
        "PageSize=ten",
        "Page=-1",
        "PageToken=nonsense",
    ] {
        let r = api
            .get(&format!("/v1/Services?{bad}"))
            .expect_error(400, 20001);
        let name = bad.split('=').next().expect("name");
        assert!(r.s("message").contains(name), "{bad}: {}", r.text);
    }
}

#[test]
fn nested_lists_page_too() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("nested");
    let ze = api.environment(&zs, "prod", None).s("sid");
    for i in 0..5 {
        api.post(
            &format!("/v1/Services/{zs}/Environments/{ze}/Variables"),
            &[("Key", &format!("K{i}")), ("Value", "v")],
        )
        .expect(201);
    }
    let mut keys = Vec::new();
    let mut url = format!("/v1/Services/{zs}/Environments/{ze}/Variables?PageSize=2");
    loop {
        let page = api.get(&url).expect(200);
        assert_eq!(page.json["meta"]["key"], "variables");
        for v in page.json["variables"].as_array().expect("array") {
            keys.push(v["key"].as_str().expect("key").to_owned());
        }
        match page.json["meta"]["next_page_url"].as_str() {
            Some(n) => url = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(keys, ["K4", "K3", "K2", "K1", "K0"]);
}
