//! Secrets stay out of the queue: in a JSON value, every occurrence of a
//! secret's value inside a string becomes a marker naming the secret
//! (`\u{1}secret:NAME\u{1}`), and the other side puts its own value back.

use serde_json::Value;

const MARK: char = '\u{1}';

/// `(name, value)` pairs; empty values are never masked.
pub(crate) type Secrets = Vec<(String, String)>;

/// The workflow's secrets as `context` holds them.
pub(crate) fn of_context(context: &flow_core::Context) -> Secrets {
    context
        .workflow()
        .secrets()
        .iter()
        .filter_map(|name| context.secret(name).map(|v| (name.clone(), v.to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The workflow's secrets from this process's environment.
pub(crate) fn of_env(names: &[String]) -> Secrets {
    names
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// `value` with every secret value replaced by its marker.
pub(crate) fn mask(value: &Value, secrets: &Secrets) -> Value {
    if secrets.is_empty() {
        return value.clone();
    }
    map_strings(value, &|s| {
        let mut out = s.to_owned();
        for (name, secret) in secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &format!("{MARK}secret:{name}{MARK}"));
            }
        }
        out
    })
}

/// `value` with every marker replaced by the secret's value (a secret this
/// side does not know becomes empty).
pub(crate) fn unmask(value: &Value, secrets: &Secrets) -> Value {
    map_strings(value, &|s| {
        if !s.contains(MARK) {
            return s.to_owned();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find(MARK) {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            match (after.strip_prefix("secret:"), after.find(MARK)) {
                (Some(_), Some(end)) => {
                    let name = &after["secret:".len()..end];
                    if let Some((_, v)) = secrets.iter().find(|(n, _)| n == name) {
                        out.push_str(v);
                    }
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push(MARK);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    })
}

fn map_strings(value: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| map_strings(v, f)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), map_strings(v, f))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn masked_values_hold_no_secret_and_come_back() {
        let secrets = vec![("TOKEN".to_owned(), "s3cr3t".to_owned())];
        let config = json!({ "headers": { "authorization": "Bearer s3cr3t" }, "n": 1, "list": ["s3cr3t", "x"] });
        let masked = super::mask(&config, &secrets);
        assert!(!masked.to_string().contains("s3cr3t"), "{masked}");
        assert_eq!(super::unmask(&masked, &secrets), config);
        // Another side's value for the same name.
        let theirs = vec![("TOKEN".to_owned(), "other".to_owned())];
        assert_eq!(
            super::unmask(&masked, &theirs)["headers"]["authorization"],
            json!("Bearer other")
        );
        // Nothing to do without secrets or markers.
        assert_eq!(super::unmask(&config, &secrets), config);
        assert_eq!(super::mask(&config, &Vec::new()), config);
    }
}
