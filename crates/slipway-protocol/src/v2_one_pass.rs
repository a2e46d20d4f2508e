//! A V2 JSON request read in one pass: each input's `data` goes straight
//! into its typed buffer as the parser reaches it, when the input's `name`,
//! `shape` and `datatype` came before it (the order every client writes),
//! the datatype is known and the shape passes the caller's check.
//!
//! The general reader ([`crate::v2::decode_request_checked`] with serde's
//! derived reader) takes `data` as text in a first pass and reads it in a
//! second; on a batch of 256 rows that first pass was a tenth of the
//! request's CPU. This reader answers only requests it takes whole: on any
//! error — bad JSON, a missing or repeated field, a bad element — or a form
//! it does not handle (a request written as an array), it gives up and the
//! general reader reads the body again, so every error and its message stay
//! the general reader's. What it returns is what the general reader would
//! have returned, with the elements already read by the same element reader
//! (`data::read_json_elements`) with the same dtype.

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use slipway_runtime::{element_count, DataType};
use std::fmt;

use crate::data::read_json_elements;
use crate::v2::{Parameters, RequestOutput, ShapeCheck, WireData, WireInput, WireRequest};

/// The request in `json`, read in one pass; `None` when the general reader
/// must read it.
pub(crate) fn parse<'a>(json: &'a str, check: ShapeCheck<'_>) -> Option<WireRequest<'a>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let req = RequestSeed(Ctx {
        check,
        // never trust a declared size beyond what the text can hold
        max_elements: json.len() / 2 + 1,
    })
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(req)
}

/// The keys this reader knows (of the request and of an input).
enum Key {
    Id,
    Parameters,
    Inputs,
    Outputs,
    Name,
    Shape,
    Datatype,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "id" => Key::Id,
                    "parameters" => Key::Parameters,
                    "inputs" => Key::Inputs,
                    "outputs" => Key::Outputs,
                    "name" => Key::Name,
                    "shape" => Key::Shape,
                    "datatype" => Key::Datatype,
                    "data" => Key::Data,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Gives up (the general reader says what is wrong).
fn give_up<E: serde::de::Error>() -> E {
    E::custom("read again by the general reader")
}

/// Sets `slot` once; a second time gives up (the general reader refuses a
/// repeated field).
fn once<T, E: serde::de::Error>(slot: &mut Option<T>, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(give_up());
    }
    *slot = Some(value);
    Ok(())
}

/// What every level of the request needs: the caller's shape check and
/// the most elements an input's text can hold.
#[derive(Clone, Copy)]
struct Ctx<'c> {
    check: ShapeCheck<'c>,
    max_elements: usize,
}

struct RequestSeed<'c>(Ctx<'c>);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = WireRequest<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = WireRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inference request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id: Option<Option<String>> = None;
        let mut parameters: Option<Option<Parameters>> = None;
        let mut inputs: Option<Vec<WireInput<'de>>> = None;
        let mut outputs: Option<Option<Vec<RequestOutput>>> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => once(&mut id, map.next_value()?)?,
                Key::Parameters => once(&mut parameters, map.next_value()?)?,
                Key::Outputs => once(&mut outputs, map.next_value()?)?,
                Key::Inputs => {
                    if inputs.is_some() {
                        return Err(give_up());
                    }
                    inputs = Some(map.next_value_seed(InputsSeed(self.0))?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(WireRequest {
            id: id.flatten(),
            parameters: parameters.flatten(),
            inputs: inputs.ok_or_else(give_up)?,
            outputs: outputs.flatten(),
        })
    }
}

struct InputsSeed<'c>(Ctx<'c>);

impl<'de> DeserializeSeed<'de> for InputsSeed<'_> {
    type Value = Vec<WireInput<'de>>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_> {
    type Value = Vec<WireInput<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of inputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut inputs = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
        while let Some(input) = seq.next_element_seed(InputSeed(self.0))? {
            inputs.push(input);
        }
        Ok(inputs)
    }
}

struct InputSeed<'c>(Ctx<'c>);

impl<'de> DeserializeSeed<'de> for InputSeed<'_> {
    type Value = WireInput<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// One input's `data`, read as `dtype` elements.
struct ElementsSeed {
    dtype: DataType,
    capacity: usize,
}

impl<'de> DeserializeSeed<'de> for ElementsSeed {
    type Value = WireData<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        read_json_elements(d, self.dtype, self.capacity).map(WireData::Read)
    }
}

impl<'de> Visitor<'de> for InputSeed<'_> {
    type Value = WireInput<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name: Option<String> = None;
        let mut shape: Option<Vec<i64>> = None;
        let mut datatype: Option<String> = None;
        let mut parameters: Option<Option<Parameters>> = None;
        let mut data: Option<Option<WireData<'de>>> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Name => once(&mut name, map.next_value()?)?,
                Key::Shape => once(&mut shape, map.next_value()?)?,
                Key::Datatype => once(&mut datatype, map.next_value()?)?,
                Key::Parameters => once(&mut parameters, map.next_value()?)?,
                Key::Data => {
                    if data.is_some() {
                        return Err(give_up());
                    }
                    // the elements now, when the general reader would read
                    // them (its checks before the data pass); else the text
                    let read_now = match (&name, &shape, &datatype) {
                        (Some(n), Some(s), Some(t)) => DataType::from_v2(t)
                            .zip(element_count(s).ok())
                            .filter(|_| (self.0.check)(n, s).is_ok()),
                        _ => None,
                    };
                    let value = match read_now {
                        Some((dtype, count)) => map.next_value_seed(ElementsSeed {
                            dtype,
                            capacity: count.min(self.0.max_elements),
                        })?,
                        None => match map.next_value::<Option<WireData<'de>>>()? {
                            Some(text) => text,
                            // `"data": null` (the general reader's "missing")
                            None => return Err(give_up()),
                        },
                    };
                    data = Some(Some(value));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(WireInput {
            name: name.ok_or_else(give_up)?,
            shape: shape.ok_or_else(give_up)?,
            datatype: datatype.ok_or_else(give_up)?,
            parameters: parameters.flatten(),
            data: data.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::data::data_from_json_text;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use slipway_runtime::TensorData;

    /// The caller's check: batches of more than 4 rows are refused.
    fn check(_: &str, shape: &[i64]) -> Result<(), String> {
        match shape.first() {
            Some(n) if *n > 4 => Err(format!("batch {n} over 4")),
            _ => Ok(()),
        }
    }

    fn same(a: &TensorData, b: &TensorData) -> bool {
        let bits = |d: &TensorData| {
            (0..d.len())
                .map(|i| d.get_f64(i).map(f64::to_bits))
                .collect::<Vec<_>>()
        };
        a.dtype() == b.dtype()
            && if a.dtype().is_float() {
                bits(a) == bits(b)
            } else {
                a == b
            }
    }

    /// Elements, mostly numbers, with the kinds the element reader refuses.
    fn element() -> impl Strategy<Value = String> {
        prop_oneof![
            60 => (-1e6f64..1e6).prop_map(|x| format!("{x}")),
            60 => (-300i64..300).prop_map(|i| i.to_string()),
            1 => Just("1e39".to_string()),
            1 => Just("9223372036854775808".to_string()),
            1 => Just("null".to_string()),
            1 => Just("true".to_string()),
            1 => Just("\"NaN\"".to_string()),
            1 => Just("\"ab\"".to_string()),
            1 => Just("[1, [2]]".to_string()),
            1 => Just("{\"k\": 1}".to_string()),
        ]
    }

    /// An input object: fields in any order, some missing, repeated,
    /// unknown or of the wrong kind; data flat, nested or null.
    fn input() -> impl Strategy<Value = String> {
        (
            prop_oneof![8 => Just("FP32"), 4 => Just("FP64"), 1 => Just("INT64"), 1 => Just("INT32"),
                1 => Just("UINT8"), 1 => Just("BOOL"), 1 => Just("BYTES"), 1 => Just("FP16"),
                1 => Just("FP99"), 1 => Just("7")],
            prop::collection::vec(prop_oneof![9 => 0i64..5, 1 => Just(-1i64), 1 => Just(6i64)], 0..3),
            prop::collection::vec(element(), 0..9),
            (
                Just(vec![0u8, 2, 3, 5]).prop_shuffle(),
                any::<bool>(),
                prop::collection::vec(prop_oneof![7u8..12, Just(12u8), Just(13u8), Just(1u8)], 0..3),
                0u8..12,
            ),
        )
            .prop_map(|(dtype, shape, elements, (mut order, data_last, extra, twist))| {
                // mostly the four fields once each, data last (as clients
                // write them), with extra, repeated or missing ones
                if data_last {
                    order.retain(|k| *k != 0);
                    order.push(0);
                }
                if twist == 0 {
                    order.remove(0);
                }
                if twist < 4 {
                    order.extend(extra);
                }
                if twist == 11 {
                    order[0] = 12;
                }
                let shape = format!("[{}]", shape.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
                let data = if order.contains(&13) {
                    "null".to_string()
                } else if order.contains(&12) && elements.len() >= 2 {
                    let (a, b) = elements.split_at(elements.len() / 2);
                    format!("[[{}],[{}]]", a.join(","), b.join(","))
                } else {
                    format!("[{}]", elements.join(","))
                };
                let dtype = if dtype == "7" { "7".to_string() } else { format!("\"{dtype}\"") };
                let fields: Vec<String> = order
                    .iter()
                    .map(|k| match k {
                        0 | 1 | 12 | 13 => format!("\"data\": {data}"),
                        2 => "\"name\": \"x\"".to_string(),
                        3 | 4 => format!("\"shape\": {shape}"),
                        5 | 6 => format!("\"datatype\": {dtype}"),
                        7 => "\"parameters\": {\"binary_data_size\": 8}".to_string(),
                        8 => "\"parameters\": {\"content_type\": \"np\"}".to_string(),
                        9 => "\"other\": [1, {\"a\": null}]".to_string(),
                        10 => "\"na\\u006de\": \"y\"".to_string(),
                        _ => "\"parameters\": null".to_string(),
                    })
                    .collect();
                format!("{{{}}}", fields.join(", "))
            })
    }

    /// A request: one or two inputs, other fields, malformed forms.
    fn body() -> impl Strategy<Value = String> {
        (prop::collection::vec(input(), 1..3), 0u8..10).prop_map(|(inputs, twist)| {
            let inputs = inputs.join(", ");
            match twist {
                1 => format!(
                    "{{\"id\": \"r\", \"inputs\": [{inputs}], \"outputs\": [{{\"name\": \"o\"}}]}}"
                ),
                2 => format!(
                    "{{\"parameters\": {{\"binary_data_output\": true}}, \"inputs\": [{inputs}]}}"
                ),
                3 => format!("{{\"inputs\": [{inputs}]}} x"),
                4 => format!("{{\"inputs\": [{inputs}], \"inputs\": []}}"),
                5 => format!("{{\"id\": 7, \"inputs\": [{inputs}]}}"),
                6 => format!("[null, null, [{inputs}]]"),
                7 => format!(
                    "{{\"inputs\": [{inputs}], \"id\": null, \"extra\": {{\"inputs\": 1}}}}"
                ),
                8 => format!("{{\"inputs\": [{inputs}"),
                _ => format!("{{\"inputs\": [{inputs}]}}"),
            }
        })
    }

    /// What the one-pass reader returns, the general reader returns too,
    /// with the same elements; counts how many bodies it took and how many
    /// inputs it read in the pass (so the test cannot pass by declining).
    fn compare(json: &str) -> Result<(bool, usize), TestCaseError> {
        let Some(fast) = parse(json, &check) else {
            return Ok((false, 0));
        };
        let general: WireRequest<'_> = serde_json::from_str(json)
            .map_err(|e| TestCaseError::fail(format!("{json}: one pass took it, general: {e}")))?;
        prop_assert_eq!(&fast.id, &general.id);
        prop_assert_eq!(&fast.parameters, &general.parameters);
        prop_assert_eq!(&fast.outputs, &general.outputs);
        prop_assert_eq!(fast.inputs.len(), general.inputs.len());
        let mut read = 0;
        for (f, g) in fast.inputs.iter().zip(&general.inputs) {
            prop_assert_eq!(&f.name, &g.name);
            prop_assert_eq!(&f.shape, &g.shape);
            prop_assert_eq!(&f.datatype, &g.datatype);
            prop_assert_eq!(&f.parameters, &g.parameters);
            match (&f.data, &g.data) {
                (None, None) => {}
                (Some(WireData::Text(a)), Some(WireData::Text(b))) => {
                    prop_assert_eq!(a.get(), b.get());
                }
                (Some(WireData::Read(a)), Some(WireData::Text(b))) => {
                    read += 1;
                    let dtype = DataType::from_v2(&g.datatype).unwrap();
                    let want = data_from_json_text("d", b.get(), dtype, 4);
                    prop_assert!(
                        want.as_ref().is_ok_and(|w| same(a, w)),
                        "{json}: read {a:?}, the text gives {want:?}"
                    );
                    prop_assert!(check(&g.name, &g.shape).is_ok());
                }
                _ => prop_assert!(false, "{json}: data read differently"),
            }
        }
        Ok((true, read))
    }

    #[test]
    fn takes_only_what_the_general_reader_takes_the_same() {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 3000,
            rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
            ..ProptestConfig::default()
        });
        let (mut taken, mut read, mut total) = (0usize, 0usize, 0usize);
        let tree = body();
        for _ in 0..3000 {
            let json = tree.new_tree(&mut runner).unwrap().current();
            let (t, r) = compare(&json).unwrap_or_else(|e| panic!("{e}"));
            total += 1;
            taken += usize::from(t);
            read += r;
        }
        assert!(taken * 20 > total, "took {taken} of {total}");
        assert!(
            read * 20 > total,
            "read {read} inputs in the pass, of {total} bodies"
        );
        assert!(taken < total, "took every body");
    }

    #[test]
    fn reads_the_common_request_in_the_pass() {
        let json = r#"{"id": "1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2.5, -3, 4e2]}]}"#;
        let req = parse(json, &check).unwrap();
        let Some(WireData::Read(TensorData::Fp32(v))) = &req.inputs[0].data else {
            panic!("not read in the pass");
        };
        assert_eq!(v, &[1.0, 2.5, -3.0, 400.0]);
        // data before its fields: the text, read later
        let json =
            r#"{"inputs": [{"data": [1, 2], "name": "x", "shape": [2], "datatype": "FP32"}]}"#;
        assert!(matches!(
            parse(json, &check).unwrap().inputs[0].data,
            Some(WireData::Text(_))
        ));
        // over the caller's limit: not materialised
        let json = r#"{"inputs": [{"name": "x", "shape": [5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}"#;
        assert!(matches!(
            parse(json, &check).unwrap().inputs[0].data,
            Some(WireData::Text(_))
        ));
        // a bad element: the general reader says so
        let json =
            r#"{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, "a"]}]}"#;
        assert!(parse(json, &check).is_none());
    }
}
