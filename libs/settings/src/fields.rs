//! The field names of a `Deserialize` struct, read from the derive's own metadata.
//!
//! A derived `Deserialize` for a struct calls `deserialize_struct(name, FIELDS, visitor)`; a
//! deserializer that records `FIELDS` and then refuses learns the names without a value and
//! without a second list to keep in step with the struct.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::forward_to_deserialize_any;

/// Returns the field names of the struct `T` (its serialized names), or an empty slice when
/// `T` does not deserialize as a struct.
pub(crate) fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    // The error is the point: the deserializer refuses once it has seen the field list.
    let _ = T::deserialize(FieldRecorder {
        fields: &mut fields,
    });
    fields.unwrap_or(&[])
}

struct FieldRecorder<'a> {
    fields: &'a mut Option<&'static [&'static str]>,
}

impl<'de> de::Deserializer<'de> for FieldRecorder<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.fields = Some(fields);
        Err(de::Error::custom("field names recorded"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code, reason = "only the field names are read")]
    struct Sections {
        gateway: u32,
        #[serde(rename = "bus")]
        message_bus: String,
    }

    #[test]
    fn names_come_from_the_derive_in_serialized_form() {
        assert_eq!(struct_fields::<Sections>(), ["gateway", "bus"]);
        assert!(struct_fields::<u32>().is_empty());
    }
}
