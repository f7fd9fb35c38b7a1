//! The canonical executor with a thread count and two dot-product kernels.
//!
//! Every layer computes exact integers: a dot product is a sum of `i64` products whose partial
//! sums are all bounded by validation (`< 2^62`), so any summation order gives the same integer.
//! The kernels nevertheless use wrapping `i64` arithmetic, which is associative and commutative
//! (the ring Z/2^64), so even the order-independence argument does not depend on the bound.
//! Hence the output is the same bytes for every thread count and every kernel; the tests in
//! `tests/exec.rs` check this against the reference [`QuantModel::execute`].
//!
//! Kernels:
//! - **portable**: a scalar loop in index order (`ExecPath::Portable`, or the environment
//!   variable `OPAL_QUANT_PORTABLE=1`, which forces it whatever the options say);
//! - **lanes**: 8 independent `i64` accumulators over fixed-width chunks (the compiler
//!   vectorizes it where the target has 64-bit vector multiplies);
//! - **avx2** (x86_64, detected at run time): `vpmaddwd` on 16 `i16` lanes, widened to `i64`
//!   accumulators at every step; used only for layers whose input provably fits `i16`
//!   (validated bound `max|x| < 2^15`) and whose pairwise product sums provably fit `i32`
//!   (`2 * 2^(wb-1) * max|x| < 2^31`).
//!
//! `ExecPath::Auto` uses avx2 where it applies, lanes otherwise.

use std::ops::Range;

use crate::exec::{add, maxpool_range, requantize, Trace};
use crate::model::{Conv2d, Dense, Layer, QuantModel, ValueShape};
use crate::QuantError;

/// Environment variable that forces the portable scalar kernel when set to `1`.
pub const PORTABLE_ENV: &str = "OPAL_QUANT_PORTABLE";

/// Which dot-product kernel to use. All give identical results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecPath {
    /// The fastest kernel available on this CPU for each layer (avx2, else lanes).
    #[default]
    Auto,
    /// The scalar loop in index order.
    Portable,
    /// The fixed-width lane kernel (never the `std::arch` one); for tests and comparisons.
    Lanes,
}

/// Options of [`QuantModel::run_with`]. `threads` 0 is treated as 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecOptions {
    pub threads: usize,
    pub path: ExecPath,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            path: ExecPath::Auto,
        }
    }
}

/// True when `OPAL_QUANT_PORTABLE=1` is set in the environment.
pub fn portable_forced() -> bool {
    std::env::var_os(PORTABLE_ENV).is_some_and(|v| v == "1")
}

/// The kernel a layer actually runs (reported by [`kernel_for`] for tests and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Scalar,
    Lanes,
    Avx2,
}

fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The kernel used for a linear layer with `weight_bits` weights over an input whose values
/// are bounded by `x` (inclusive `max_abs`), under `path` (and the environment).
pub fn kernel_for(path: ExecPath, weight_bits: u8, x: ValueShape) -> Kernel {
    if path == ExecPath::Portable || portable_forced() {
        return Kernel::Scalar;
    }
    // Strict: a bound of exactly 2^15 admits +2^15, which is not an i16.
    let fits_i16 = x.max_abs < 1 << 15;
    let pair_fits_i32 = 2 * (1i128 << (weight_bits.clamp(1, 16) - 1)) * x.max_abs < 1i128 << 31;
    if path == ExecPath::Auto && fits_i16 && pair_fits_i32 && avx2_available() {
        Kernel::Avx2
    } else {
        Kernel::Lanes
    }
}

fn dot_scalar(w: &[i16], x: &[i64]) -> i64 {
    w.iter().zip(x).fold(0i64, |acc, (a, b)| {
        acc.wrapping_add((*a as i64).wrapping_mul(*b))
    })
}

fn dot_lanes(w: &[i16], x: &[i64]) -> i64 {
    const L: usize = 8;
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    let mut acc = [0i64; L];
    let wc = w.chunks_exact(L);
    let xc = x.chunks_exact(L);
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (a, b) in wc.zip(xc) {
        for l in 0..L {
            acc[l] = acc[l].wrapping_add((a[l] as i64).wrapping_mul(b[l]));
        }
    }
    let mut s = acc.iter().fold(0i64, |s, v| s.wrapping_add(*v));
    for (a, b) in wr.iter().zip(xr) {
        s = s.wrapping_add((*a as i64).wrapping_mul(*b));
    }
    s
}

/// # Safety
/// The CPU must support AVX2. Every `|w[i] * x[i] + w[i+1] * x[i+1]|` must be below 2^31
/// (checked by [`kernel_for`] from the validated bounds).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(w: &[i16], x: &[i16]) -> i64 {
    use std::arch::x86_64::*;
    let n = w.len().min(x.len());
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= len of both slices; unaligned loads.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i),
                _mm256_loadu_si256(x.as_ptr().add(i) as *const __m256i),
            )
        };
        let p = _mm256_madd_epi16(a, b);
        acc0 = _mm256_add_epi64(acc0, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(p)));
        acc1 = _mm256_add_epi64(acc1, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(p, 1)));
        i += 16;
    }
    let mut lanes = [0i64; 4];
    // SAFETY: `lanes` is 32 bytes; unaligned store.
    unsafe {
        _mm256_storeu_si256(
            lanes.as_mut_ptr() as *mut __m256i,
            _mm256_add_epi64(acc0, acc1),
        )
    };
    let mut s = lanes.iter().fold(0i64, |s, v| s.wrapping_add(*v));
    for j in i..n {
        s = s.wrapping_add(w[j] as i64 * x[j] as i64);
    }
    s
}

/// An input vector prepared for one kernel.
enum Xs<'a> {
    Wide(&'a [i64]),
    Narrow(Vec<i16>),
}

fn prepare(kernel: Kernel, x: &[i64]) -> Xs<'_> {
    if kernel == Kernel::Avx2 {
        Xs::Narrow(x.iter().map(|v| *v as i16).collect())
    } else {
        Xs::Wide(x)
    }
}

fn dot(kernel: Kernel, w: &[i16], x: &Xs) -> i64 {
    match (kernel, x) {
        (Kernel::Scalar, Xs::Wide(x)) => dot_scalar(w, x),
        (Kernel::Lanes, Xs::Wide(x)) => dot_lanes(w, x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Kernel::Avx2 is chosen only when AVX2 was detected and the bounds hold.
        (Kernel::Avx2, Xs::Narrow(x)) => unsafe { dot_avx2(w, x) },
        (_, Xs::Narrow(x)) => {
            let wide: Vec<i64> = x.iter().map(|v| *v as i64).collect();
            dot_scalar(w, &wide)
        }
        (_, Xs::Wide(x)) => dot_scalar(w, x),
    }
}

/// Splits `0..n` into at most `threads` contiguous ranges, runs `f` on each (in scoped threads
/// when more than one) and returns the results in range order.
fn par_ranges<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<(Range<usize>, T)> {
    let t = threads.max(1).min(n.max(1));
    if t <= 1 {
        return vec![(0..n, f(0..n))];
    }
    let chunk = n.div_ceil(t);
    let ranges: Vec<Range<usize>> = (0..t)
        .map(|k| (k * chunk).min(n)..((k + 1) * chunk).min(n))
        .filter(|r| !r.is_empty())
        .collect();
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .iter()
            .cloned()
            .map(|r| s.spawn(move || f(r)))
            .collect();
        ranges
            .into_iter()
            .zip(handles)
            .map(|(r, h)| {
                let v = h.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                (r, v)
            })
            .collect()
    })
}

fn par_flat<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(Range<usize>) -> Vec<T> + Sync,
) -> Vec<T> {
    par_ranges(n, threads, f)
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect()
}

fn dense(d: &Dense, x: &[i64], xs: ValueShape, opts: &ExecOptions) -> Vec<i64> {
    let kernel = kernel_for(opts.path, d.weight_bits, xs);
    let xp = prepare(kernel, x);
    let cols = d.cols as usize;
    par_flat(d.rows as usize, opts.threads, |rows| {
        rows.map(|i| {
            (d.bias[i] as i64).wrapping_add(dot(kernel, &d.weights[i * cols..(i + 1) * cols], &xp))
        })
        .collect()
    })
}

fn conv2d(c: &Conv2d, x: &[i64], xs: ValueShape, opts: &ExecOptions) -> Vec<i64> {
    let kernel = kernel_for(opts.path, c.weight_bits, xs);
    let (oh, ow) = c.out_hw();
    let npos = oh * ow;
    let (ic, ih, iw) = (c.in_ch as usize, c.in_h as i64, c.in_w as i64);
    let (kh, kw, s, p) = (c.kh as usize, c.kw as usize, c.stride as i64, c.pad as i64);
    let taps = ic * kh * kw;
    let oc = c.out_ch as usize;
    // Workers take ranges of output positions; each builds the im2col patch of a position
    // (tap order c, u, v = the OIHW weight order; 0 in the padding) and dots it with every
    // output channel's weight row.
    let parts = par_ranges(npos, opts.threads, |pos| {
        let mut local = vec![0i64; oc * pos.len()];
        let mut patch = vec![0i64; taps];
        for (lp, pi) in pos.clone().enumerate() {
            let (i, j) = ((pi / ow) as i64, (pi % ow) as i64);
            let mut t = 0;
            for ch in 0..ic {
                for u in 0..kh {
                    let r = i * s + u as i64 - p;
                    for v in 0..kw {
                        let col = j * s + v as i64 - p;
                        patch[t] = if r < 0 || r >= ih || col < 0 || col >= iw {
                            0
                        } else {
                            x[(ch * ih as usize + r as usize) * iw as usize + col as usize]
                        };
                        t += 1;
                    }
                }
            }
            let xp = prepare(kernel, &patch);
            for o in 0..oc {
                local[o * pos.len() + lp] = (c.bias[o] as i64).wrapping_add(dot(
                    kernel,
                    &c.weights[o * taps..(o + 1) * taps],
                    &xp,
                ));
            }
        }
        local
    });
    let mut y = vec![0i64; oc * npos];
    for (pos, local) in parts {
        for o in 0..oc {
            y[o * npos + pos.start..o * npos + pos.end]
                .copy_from_slice(&local[o * pos.len()..(o + 1) * pos.len()]);
        }
    }
    y
}

impl QuantModel {
    /// Runs the model and returns its output vector (the reference single-threaded portable
    /// executor, [`QuantModel::execute`]).
    pub fn run(&self, input: &[i64]) -> Result<Vec<i64>, QuantError> {
        let mut t = self.execute(input)?;
        Ok(t.values.pop().unwrap_or_default())
    }

    /// Runs the model with `opts` (threads, kernel) and returns its output vector: the same
    /// bytes as [`run`](Self::run) for every option.
    pub fn run_with(&self, input: &[i64], opts: ExecOptions) -> Result<Vec<i64>, QuantError> {
        let mut t = self.execute_with(input, opts)?;
        Ok(t.values.pop().unwrap_or_default())
    }

    /// Like [`execute`](Self::execute) (every intermediate vector), with `opts`.
    pub fn execute_with(&self, input: &[i64], opts: ExecOptions) -> Result<Trace, QuantError> {
        let shapes = self.check_input(input)?;
        let mut values = vec![input.to_vec()];
        for (k, layer) in self.layers.iter().enumerate() {
            let x = &values[values.len() - 1];
            let xs = shapes[k];
            let y = match layer {
                Layer::Dense(d) => dense(d, x, xs, &opts),
                Layer::Conv2d(c) => conv2d(c, x, xs, &opts),
                Layer::Requant(r) => par_flat(x.len(), opts.threads, |range| {
                    x[range].iter().map(|v| requantize(*v, r)).collect()
                }),
                Layer::MaxPool2d(p) => {
                    let (oh, ow) = p.out_hw();
                    par_flat(p.ch as usize * oh * ow, opts.threads, |range| {
                        maxpool_range(p, x, range)
                    })
                }
                Layer::Add(a) => {
                    let v = &values[a.from as usize];
                    par_flat(x.len(), opts.threads, |range| {
                        add(a, &x[range.clone()], &v[range])
                    })
                }
            };
            values.push(y);
        }
        Ok(Trace { values })
    }
}
