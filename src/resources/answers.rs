//! Create answers kept for the `converge` that follows in the same process.
//!
//! A kind's `converge` reads the resource back to diff what it sets (rules, policies,
//! attachments) or to wait until it is usable. Right after this process created it, the
//! create call's answer already says all of that: a security group AWS just made has no
//! ingress rule and the allow-all egress rule, a role has no policy yet, a subnet whose answer
//! says `available` is available. So `create` keeps the answer (or what the answer implies)
//! here under the resource's id, and `converge` takes it instead of reading. Taken once: a
//! second converge in the same process (or any converge of a resource found, adopted or
//! recorded by an earlier run) reads as before.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct Answers(Mutex<HashMap<String, Box<dyn Any + Send>>>);

impl Answers {
    /// Keep what the create of `id` answered.
    pub fn keep<T: Any + Send>(&self, id: &str, answer: T) {
        self.0.lock().unwrap().insert(id.to_string(), Box::new(answer));
    }

    /// The kept answer of `id`, if it is a `T`; it is gone afterwards.
    pub fn take<T: Any + Send>(&self, id: &str) -> Option<T> {
        let mut kept = self.0.lock().unwrap();
        if !kept.get(id).is_some_and(|a| a.is::<T>()) {
            return None;
        }
        kept.remove(id).and_then(|a| a.downcast::<T>().ok()).map(|a| *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_taken_once_and_only_as_its_type() {
        let a = Answers::default();
        a.keep("sg-1", 7u32);
        assert_eq!(a.take::<String>("sg-1"), None);
        assert_eq!(a.take::<u32>("sg-1"), Some(7));
        assert_eq!(a.take::<u32>("sg-1"), None);
        assert_eq!(a.take::<u32>("sg-2"), None);
    }
}
