//! Request structs read from JSON objects only. serde's derive also reads a struct from an
//! array of its fields in order (`"compute": [1, 4]`), which the API's schema rules out;
//! fields of struct type name these functions in `deserialize_with`, and a body must be an
//! object ([`crate::parse`]), so the server refuses what the document refuses.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A `T` read from a JSON object only.
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// A struct field read from a JSON object only.
pub(crate) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    Object::deserialize(deserializer).map(|o| o.0)
}

/// An optional struct field (`null` or absent: `None`) read from a JSON object only.
pub(crate) fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(deserializer)?.map(|o| o.0))
}

/// An array of structs, each read from a JSON object only.
pub(crate) fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Object<T>>::deserialize(deserializer)?.into_iter().map(|o| o.0).collect())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: Option<u32>,
        b: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(default, deserialize_with = "super::optional_object")]
        one: Option<Inner>,
        #[serde(default, deserialize_with = "super::objects")]
        many: Vec<Inner>,
    }

    #[test]
    fn structs_come_from_objects_and_never_from_arrays() {
        let read = |text: &str| serde_json::from_str::<Outer>(text);
        let outer = read(r#"{"one": {"a": 1}, "many": [{"b": 2}]}"#).unwrap();
        assert_eq!(outer.one, Some(Inner { a: Some(1), b: None }));
        assert_eq!(outer.many, [Inner { a: None, b: Some(2) }]);
        assert_eq!(read(r#"{"one": null}"#).unwrap().one, None);
        assert!(serde_json::from_str::<Inner>("[1, 2]").is_ok(), "serde's derive takes arrays");
        for array in [r#"{"one": [1, 2]}"#, r#"{"many": [[1, 2]]}"#] {
            let error = read(array).unwrap_err().to_string();
            assert!(error.contains("expected an object"), "{array}: {error}");
        }
    }
}
