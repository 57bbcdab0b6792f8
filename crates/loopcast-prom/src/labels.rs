//! Series names from label sets and back: `service="checkout",zone="b"`, the labels sorted
//! by name and their values quoted as PromQL quotes them, so a name parses back into the
//! labels it came from.

use std::collections::BTreeMap;

/// The series name of `labels`, or `{}` for an empty set (a query that aggregates
/// everything into one series).
pub fn series_name(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "{}".into();
    }
    labels.iter().map(|(name, value)| format!("{name}=\"{}\"", escape(value))).collect::<Vec<_>>().join(",")
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The labels a series name was made from ([`series_name`]); `None` when the name was
/// not made that way (a series read from a file).
pub fn parse_series_name(name: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    if name == "{}" {
        return Some(labels);
    }
    let mut rest = name;
    loop {
        let (label, after) = rest.split_once("=\"")?;
        if !is_label_name(label) {
            return None;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    _ => return None,
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(label.to_string(), value).is_some() {
            return None;
        }
        rest = &after[end + 1..];
        if rest.is_empty() {
            return Some(labels);
        }
        rest = rest.strip_prefix(',')?;
    }
}

/// Whether `name` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` as a metric-name part: characters outside `[a-zA-Z0-9_:]` become `_`.
pub(crate) fn metric_name_part(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_into_their_labels() {
        let cases = [
            vec![],
            vec![("service", "checkout")],
            vec![("instance", "10.0.0.1:9090"), ("job", "api,\"edge\"\\\nx"), ("zone", "")],
        ];
        for case in cases {
            let labels: BTreeMap<String, String> =
                case.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let name = series_name(&labels);
            assert_eq!(parse_series_name(&name), Some(labels), "{name}");
        }
        assert_eq!(
            series_name(&BTreeMap::from([("a".into(), "x".into()), ("b".into(), "y".into())])),
            "a=\"x\",b=\"y\""
        );
    }

    #[test]
    fn other_names_are_not_label_sets() {
        for name in ["svc-0", "a=b", "a=\"x\"b=\"y\"", "1a=\"x\"", "a=\"x", "a=\"x\",a=\"y\"", ""] {
            assert_eq!(parse_series_name(name), None, "{name}");
        }
        assert_eq!(metric_name_part("latency p95/ms"), "latency_p95_ms");
    }
}
