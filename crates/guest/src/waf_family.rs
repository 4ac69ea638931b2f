//! The rule family of a WAF block, for the refusal counter's `chatgate.waf.family`: the
//! `attack-*` tag of the first reported rule that has one (`attack-sqli` gives `sqli`),
//! the tag the OWASP Core Rule Set and chatgate's own rules (`components/waf/rules`)
//! both give each attack rule. Rules are reported in the order they matched, so this
//! is the first family the request triggered. A block by rules without such a tag (the
//! prompt policy, a body the WAF cannot read) is `other`.

/// The family of a block from the WAF's audit line (its `matches`, each with `tags`);
/// `other` without one.
pub fn of_audit(audit: Option<&str>) -> String {
    audit
        .and_then(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .and_then(|record| {
            record
                .get("matches")?
                .as_array()?
                .iter()
                .filter_map(|m| m.get("tags")?.as_array())
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .find_map(|tag| tag.strip_prefix("attack-"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "other".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_attack_tag_names_the_family() {
        let line = r#"{"rule_ids":[31100,49110],"matches":[
            {"id":31100,"tags":["application-multi","attack-sqli","chatgate/sqli"]},
            {"id":49110,"tags":["anomaly-evaluation"]}]}"#;
        assert_eq!(of_audit(Some(line)), "sqli");
        let later = r#"{"matches":[{"id":1,"tags":[]},{"id":2,"tags":["attack-rce"]}]}"#;
        assert_eq!(of_audit(Some(later)), "rce");
    }

    #[test]
    fn without_an_attack_tag_it_is_other() {
        assert_eq!(
            of_audit(Some(r#"{"matches":[{"id":1,"tags":["policy"]}]}"#)),
            "other"
        );
        assert_eq!(of_audit(Some("not json")), "other");
        assert_eq!(of_audit(None), "other");
    }
}
