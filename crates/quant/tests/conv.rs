use opal_quant::*;

#[allow(clippy::too_many_arguments)]
fn conv(
    in_ch: u32,
    h: u32,
    w: u32,
    out_ch: u32,
    k: u32,
    stride: u32,
    pad: u32,
    weights: Vec<i16>,
    bias: Vec<i32>,
) -> Conv2d {
    Conv2d {
        in_ch,
        in_h: h,
        in_w: w,
        out_ch,
        kh: k,
        kw: k,
        stride,
        pad,
        weight_bits: 8,
        weights,
        bias,
    }
}

fn model(c: Conv2d) -> QuantModel {
    QuantModel {
        input_len: c.in_ch * c.in_h * c.in_w,
        input_bits: 8,
        layers: vec![Layer::Conv2d(c)],
        input_scale: 1.0,
        output_scale: 1.0,
    }
}

#[test]
fn conv_hand_examples() {
    let x: Vec<i64> = (1..=9).collect();
    let m = model(conv(1, 3, 3, 1, 2, 1, 0, vec![1; 4], vec![0]));
    assert_eq!(m.execute(&x).unwrap().output(), &[12, 16, 24, 28]);
    let m = model(conv(1, 3, 3, 1, 2, 2, 1, vec![1; 4], vec![100]));
    assert_eq!(m.execute(&x).unwrap().output(), &[101, 105, 111, 128]);
}

#[test]
fn conv_matches_padded_reference() {
    let mut rng = SplitMix64::new(3);
    let (ic, h, w, oc, k, s, p) = (3usize, 7usize, 6usize, 4usize, 3usize, 2usize, 1usize);
    let weights: Vec<i16> = (0..oc * ic * k * k)
        .map(|_| rng.range_i64(-127, 127) as i16)
        .collect();
    let bias: Vec<i32> = (0..oc).map(|_| rng.range_i64(-50, 50) as i32).collect();
    let x: Vec<i64> = (0..ic * h * w).map(|_| rng.range_i64(-128, 127)).collect();
    let c = conv(
        ic as u32,
        h as u32,
        w as u32,
        oc as u32,
        k as u32,
        s as u32,
        p as u32,
        weights.clone(),
        bias.clone(),
    );
    let (oh, ow) = c.out_hw();
    let got = model(c).execute(&x).unwrap().output().to_vec();
    // reference: explicit zero-padded copy, then plain correlation
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let mut xp = vec![0i64; ic * ph * pw];
    for ch in 0..ic {
        for i in 0..h {
            for j in 0..w {
                xp[(ch * ph + i + p) * pw + j + p] = x[(ch * h + i) * w + j];
            }
        }
    }
    let mut want = Vec::new();
    for o in 0..oc {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = bias[o] as i64;
                for ch in 0..ic {
                    for u in 0..k {
                        for v in 0..k {
                            acc += weights[((o * ic + ch) * k + u) * k + v] as i64
                                * xp[(ch * ph + i * s + u) * pw + j * s + v];
                        }
                    }
                }
                want.push(acc);
            }
        }
    }
    assert_eq!((oh, ow), (4, 3));
    assert_eq!(got, want);
}

#[test]
fn conv_validation() {
    assert!(model(conv(1, 3, 3, 1, 4, 1, 0, vec![1; 16], vec![0]))
        .validate()
        .is_err()); // kernel too big
    assert!(model(conv(1, 3, 3, 1, 2, 0, 0, vec![1; 4], vec![0]))
        .validate()
        .is_err()); // stride 0
    assert!(model(conv(1, 3, 3, 1, 2, 1, 0, vec![1; 3], vec![0]))
        .validate()
        .is_err()); // weights
    assert!(model(conv(1, 3, 3, 1, 2, 1, 0, vec![1; 4], vec![0]))
        .validate()
        .is_ok());
}
