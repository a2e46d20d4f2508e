//! Serde helpers for protobuf's JSON mapping, which MLflow clients speak.
//!
//! Protobuf JSON writes 64-bit integers as strings and non-finite doubles as
//! `"NaN"`, `"Infinity"` and `"-Infinity"`; the Python client also sends plain
//! numbers. Readers accept both forms; writers emit numbers for integers (the
//! client accepts both) and the string forms for non-finite doubles, since
//! JSON has no literal for them.

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;
use std::fmt;

struct I64Visitor;

impl<'de> Visitor<'de> for I64Visitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a string holding an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("integer out of range for int64"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.is_finite() && v.abs() < 9.2e18 {
            Ok(v as i64)
        } else {
            Err(E::custom(format!("expected an integer, got {v}")))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("expected an integer, got \"{v}\"")))
    }
}

struct F64Visitor;

impl<'de> Visitor<'de> for F64Visitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, or \"NaN\", \"Infinity\", \"-Infinity\"")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "Inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" | "-Inf" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse()
                .map_err(|_| E::custom(format!("expected a number, got \"{other}\""))),
        }
    }
}

/// Reads an int64 given as a number or a string.
pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64Visitor)
}

/// Reads an optional int64 given as a number, a string or null.
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Opt;
    impl<'de> Visitor<'de> for Opt {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer, a string holding an integer, or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            de_i64(d).map(Some)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            I64Visitor.visit_i64(v).map(Some)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            I64Visitor.visit_u64(v).map(Some)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            I64Visitor.visit_f64(v).map(Some)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            I64Visitor.visit_str(v).map(Some)
        }
    }
    d.deserialize_any(Opt)
}

/// Reads a double given as a number or one of protobuf's string forms.
pub fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

/// Writes a double, using protobuf's string forms for NaN and the infinities.
pub fn ser_f64<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if *v == f64::INFINITY {
        s.serialize_str("Infinity")
    } else if *v == f64::NEG_INFINITY {
        s.serialize_str("-Infinity")
    } else {
        s.serialize_f64(*v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "de_i64")]
        i: i64,
        #[serde(deserialize_with = "de_f64")]
        f: f64,
        #[serde(default, deserialize_with = "de_opt_i64")]
        o: Option<i64>,
    }

    #[test]
    fn accepts_numbers_and_strings() {
        let t: T = serde_json::from_str(r#"{"i":"12","f":"NaN","o":"3"}"#).expect("parses");
        assert_eq!(t.i, 12);
        assert!(t.f.is_nan());
        assert_eq!(t.o, Some(3));
        let t: T = serde_json::from_str(r#"{"i":12,"f":1.5,"o":null}"#).expect("parses");
        assert_eq!((t.i, t.f, t.o), (12, 1.5, None));
        assert!(serde_json::from_str::<T>(r#"{"i":"x","f":1}"#).is_err());
    }

    #[test]
    fn writes_non_finite_as_strings() {
        #[derive(serde::Serialize)]
        struct W(#[serde(serialize_with = "ser_f64")] f64);
        assert_eq!(serde_json::to_string(&W(f64::NAN)).expect("ser"), "\"NaN\"");
        assert_eq!(
            serde_json::to_string(&W(f64::NEG_INFINITY)).expect("ser"),
            "\"-Infinity\""
        );
        assert_eq!(serde_json::to_string(&W(2.5)).expect("ser"), "2.5");
    }
}
