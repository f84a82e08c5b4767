//! [`py`]: JSON written the way Python's `print` shows the same data, so an example prints
//! exactly what its sssn 0.0.1 counterpart printed (`{'note': 'Hello, SSSN!'}`, `True`,
//! `None`, `['a', 'b']`). Keys keep the order of the JSON text, as Python's dicts do.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Python's `repr` of what `json.loads(text)` gives. Text that is not JSON is returned as
/// it is.
pub fn py(text: &str) -> String {
    match serde_json::from_str::<Py>(text) {
        Ok(value) => {
            let mut out = String::new();
            value.write(&mut out);
            out
        }
        Err(_) => text.to_owned(),
    }
}

/// Python's `repr` of `msg.content.data` (the `data` field of a generic content; the whole
/// content when it has none).
pub fn py_data(content: &sssn::Content) -> String {
    #[derive(serde::Deserialize)]
    struct Generic<'a> {
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
    }
    match serde_json::from_str::<Generic<'_>>(content.json()) {
        Ok(g) => py(g.data.get()),
        Err(_) => py(content.json()),
    }
}

/// A JSON value with its object keys in text order.
enum Py {
    Null,
    Bool(bool),
    Int(String),
    Float(f64),
    Str(String),
    List(Vec<Py>),
    Dict(Vec<(String, Py)>),
}

impl Py {
    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("None"),
            Self::Bool(true) => out.push_str("True"),
            Self::Bool(false) => out.push_str("False"),
            Self::Int(n) => out.push_str(n),
            // Python prints a whole float with its ".0".
            Self::Float(f) if f.fract() == 0.0 && f.abs() < 1e16 => {
                out.push_str(&format!("{f:.1}"));
            }
            Self::Float(f) => out.push_str(&f.to_string()),
            Self::Str(s) => string(out, s),
            Self::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Dict(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    string(out, k);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for Py {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Py;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Py, E> {
                Ok(Py::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Py, E> {
                Ok(Py::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Py, E> {
                Ok(Py::Int(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Py, E> {
                Ok(Py::Int(n.to_string()))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Py, E> {
                Ok(Py::Float(f))
            }
            fn visit_str<E>(self, s: &str) -> Result<Py, E> {
                Ok(Py::Str(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Py, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Py::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Py, A::Error> {
                let mut entries: Vec<(String, Py)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Py>()? {
                    // A repeated key keeps its first place and its last value, as in Python.
                    match entries.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => entries.push((k, v)),
                    }
                }
                Ok(Py::Dict(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// Python's string repr: single quotes, unless the text has a single quote and no double.
fn string(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::py;

    #[test]
    fn values_print_as_python_prints_them() {
        assert_eq!(
            py(r#"{"note": "Hello, SSSN!"}"#),
            "{'note': 'Hello, SSSN!'}"
        );
        assert_eq!(
            py(r#"{"z": [1, 2.5, 3.0], "b": null, "c": true, "a": false}"#),
            "{'z': [1, 2.5, 3.0], 'b': None, 'c': True, 'a': False}"
        );
        assert_eq!(py(r#""it's""#), "\"it's\"");
        assert_eq!(py(r#""say \"hi\" it's""#), "'say \"hi\" it\\'s'");
        assert_eq!(py(r#""°C\n""#), "'°C\\n'");
        assert_eq!(py("22.4"), "22.4");
        assert_eq!(py(r#"{"a": 1, "a": 2}"#), "{'a': 2}");
        assert_eq!(py("not json"), "not json");
        let content = sssn::Content::data(&serde_json::json!({"note": "x"})).unwrap();
        assert_eq!(super::py_data(&content), "{'note': 'x'}");
    }
}
