//! The judge of image samples: a small multilayer perceptron (pixels → 128 ReLU units → ten
//! classes) trained here on the training split with plain minibatch SGD, so that generated
//! images can be labelled and their confidence compared with held-out real images'.

use prime_core::rng::{CounterRng, Stream};

use super::{CLASSES, ImageSet};

/// Hidden units.
const HIDDEN: usize = 128;
/// Images per SGD step.
const BATCH: usize = 64;
/// Learning rate and momentum of the SGD.
const LEARNING_RATE: f32 = 0.05;
const MOMENTUM: f32 = 0.9;

/// The classifier's weights.
#[derive(Debug, Clone)]
pub struct Classifier {
    inputs: usize,
    /// `HIDDEN × inputs`, then `HIDDEN` biases.
    w1: Vec<f32>,
    b1: Vec<f32>,
    /// `CLASSES × HIDDEN`, then `CLASSES` biases.
    w2: Vec<f32>,
    b2: Vec<f32>,
}

/// Gradients (and momenta) in the classifier's layout.
type Parts = [Vec<f32>; 4];

impl Classifier {
    /// Trains on every image of `set` for `epochs` passes, in an order drawn from `seed`.
    pub fn train(set: &ImageSet, epochs: usize, seed: u64) -> Self {
        let rng = CounterRng::new(seed);
        let inputs = set.pixels_per_image();
        // Uniform ±sqrt(6 / fan-in) (He-style), from the counter stream.
        let init = |layer: u32, rows: usize, cols: usize| -> Vec<f32> {
            let bound = (6.0 / cols as f32).sqrt();
            (0..rows * cols)
                .map(|i| (rng.uniform(Stream::Init, layer, (i / cols) as u32, (i % cols) as u32) * 2.0 - 1.0) * bound)
                .collect()
        };
        let mut model = Self {
            inputs,
            w1: init(0, HIDDEN, inputs),
            b1: vec![0.0; HIDDEN],
            w2: init(1, CLASSES, HIDDEN),
            b2: vec![0.0; CLASSES],
        };
        let mut velocity = model.zeros();
        let mut order: Vec<usize> = (0..set.len()).collect();
        for epoch in 0..epochs {
            // Fisher–Yates with the counter stream.
            for i in (1..order.len()).rev() {
                let j = rng.word(Stream::TrainSample, epoch as u32, i as u32, 0) as usize % (i + 1);
                order.swap(i, j);
            }
            for batch in order.chunks(BATCH) {
                let mut grad = model.zeros();
                for &i in batch {
                    model.accumulate(set.image(i), usize::from(set.labels[i]), &mut grad);
                }
                let scale = LEARNING_RATE / batch.len() as f32;
                for (params, (g, v)) in model.parts_mut().into_iter().zip(grad.iter().zip(velocity.iter_mut())) {
                    for ((p, g), v) in params.iter_mut().zip(g).zip(v.iter_mut()) {
                        *v = MOMENTUM * *v - scale * g;
                        *p += *v;
                    }
                }
            }
        }
        model
    }

    fn zeros(&self) -> Parts {
        [vec![0.0; self.w1.len()], vec![0.0; HIDDEN], vec![0.0; self.w2.len()], vec![0.0; CLASSES]]
    }

    fn parts_mut(&mut self) -> [&mut Vec<f32>; 4] {
        [&mut self.w1, &mut self.b1, &mut self.w2, &mut self.b2]
    }

    /// Hidden activations and class probabilities of one image.
    fn forward(&self, pixels: &[u8]) -> (Vec<f32>, [f32; CLASSES]) {
        let x: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        let hidden: Vec<f32> = (0..HIDDEN)
            .map(|h| {
                let row = &self.w1[h * self.inputs..(h + 1) * self.inputs];
                (row.iter().zip(&x).map(|(w, x)| w * x).sum::<f32>() + self.b1[h]).max(0.0)
            })
            .collect();
        let mut logits = [0.0f32; CLASSES];
        for (c, logit) in logits.iter_mut().enumerate() {
            let row = &self.w2[c * HIDDEN..(c + 1) * HIDDEN];
            *logit = row.iter().zip(&hidden).map(|(w, h)| w * h).sum::<f32>() + self.b2[c];
        }
        let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp = logits.map(|l| (l - top).exp());
        let sum: f32 = exp.iter().sum();
        (hidden, exp.map(|e| e / sum))
    }

    /// Adds one image's cross-entropy gradient to `grad`.
    fn accumulate(&self, pixels: &[u8], label: usize, grad: &mut Parts) {
        let (hidden, probs) = self.forward(pixels);
        let [gw1, gb1, gw2, gb2] = grad;
        let mut dhidden = vec![0.0f32; HIDDEN];
        for c in 0..CLASSES {
            let d = probs[c] - if c == label { 1.0 } else { 0.0 };
            gb2[c] += d;
            for h in 0..HIDDEN {
                gw2[c * HIDDEN + h] += d * hidden[h];
                dhidden[h] += d * self.w2[c * HIDDEN + h];
            }
        }
        for h in 0..HIDDEN {
            if hidden[h] <= 0.0 {
                continue;
            }
            gb1[h] += dhidden[h];
            let row = &mut gw1[h * self.inputs..(h + 1) * self.inputs];
            for (g, &p) in row.iter_mut().zip(pixels) {
                *g += dhidden[h] * f32::from(p) / 255.0;
            }
        }
    }

    /// The hidden layer's activations of one image (its features, `HIDDEN` of them).
    pub fn features(&self, pixels: &[u8]) -> Vec<f32> {
        self.forward(pixels).0
    }

    /// The class probabilities of one image (`pixels` of the training images' size).
    pub fn probabilities(&self, pixels: &[u8]) -> [f32; CLASSES] {
        self.forward(pixels).1
    }
}

/// The most likely class and its probability.
pub fn label(probs: &[f32; CLASSES]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (c, p)| if p > best.1 { (c, p) } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::idx::Idx;

    /// Two classes a line apart: class 0 lights the top row, class 1 the bottom row.
    fn bars(n: usize) -> ImageSet {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let class = i % 2;
            let mut image = [0u8; 16];
            for x in 0..4 {
                image[if class == 0 { x } else { 12 + x }] = 200 + (i % 50) as u8;
            }
            pixels.extend(image);
            labels.push(class as u8);
        }
        ImageSet::new(Idx { dims: vec![n, 4, 4], data: pixels }, Idx { dims: vec![n], data: labels }).unwrap()
    }

    #[test]
    fn learns_to_tell_two_patterns_apart() {
        let set = bars(256);
        let untrained = Classifier::train(&set, 0, 1);
        let trained = Classifier::train(&set, 3, 1);
        let mut top = [0u8; 16];
        top[..4].fill(220);
        let mut bottom = [0u8; 16];
        bottom[12..].fill(220);
        let (c, p) = label(&trained.probabilities(&top));
        assert_eq!(c, 0);
        assert!(p > 0.95, "{p}");
        assert_eq!(label(&trained.probabilities(&bottom)).0, 1);
        // Training moved it: before, the two patterns were near even odds.
        assert!(label(&untrained.probabilities(&top)).1 < 0.9);
    }
}
