#!/usr/bin/env python3
"""A plain-PyTorch T5 (gated-gelu, untied head, as Hugging Face's T5ForConditionalGeneration computes it) for the
bench's comparison `pytorch-t5`: reads MODEL_DIR/config.json and model.safetensors (F32; parsed here, no extra
packages) and a JSON file of examples {"inputs": [[ids]], "labels": [[ids]]}, then answers one line per request on
stdin: "eval" -> "<seconds> <loss_1> ... <loss_n>" (each example's mean label-token cross-entropy, as LoraHub's
Seq2Seq.ExampleLosses), "quit" ends. Threads: torch's default unless TORCH_THREADS is set.
Run by bench/LoraHub.Bench (pytorch-t5); set up by bench/pytorch/setup.sh (Debian's python3-torch).
"""
import json
import math
import os
import struct
import sys
import time

import torch

DTYPES = {"F32": torch.float32}


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            f.seek(8 + n + b)
            out[name] = torch.frombuffer(bytearray(f.read(e - b)), dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def bucket(rel, bidirectional, num_buckets=32, max_distance=128):
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    exact = num_buckets // 2
    small = rel < exact
    large = exact + (torch.log(rel.float() / exact) / math.log(max_distance / exact) * (num_buckets - exact)).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(small, rel, large)


class T5:
    def __init__(self, directory):
        cfg = json.load(open(os.path.join(directory, "config.json")))
        self.heads, self.dkv = cfg["num_heads"], cfg["d_kv"]
        self.layers, self.dlayers = cfg["num_layers"], cfg.get("num_decoder_layers", cfg["num_layers"])
        self.eps = cfg.get("layer_norm_epsilon", 1e-6)
        self.w = load_safetensors(os.path.join(directory, "model.safetensors"))

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w[w]

    def attention(self, x, kv, prefix, bias):
        b, lq, _ = x.shape
        lk = kv.shape[1]
        q = torch.nn.functional.linear(x, self.w[prefix + "q.weight"]).view(b, lq, self.heads, self.dkv).transpose(1, 2)
        k = torch.nn.functional.linear(kv, self.w[prefix + "k.weight"]).view(b, lk, self.heads, self.dkv).transpose(1, 2)
        v = torch.nn.functional.linear(kv, self.w[prefix + "v.weight"]).view(b, lk, self.heads, self.dkv).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3)) + bias
        attn = torch.softmax(scores.float(), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, lq, self.heads * self.dkv)
        return torch.nn.functional.linear(out, self.w[prefix + "o.weight"])

    def ff(self, x, prefix):
        h = self.norm(x, prefix + "layer_norm.weight")
        g = torch.nn.functional.gelu(torch.nn.functional.linear(h, self.w[prefix + "DenseReluDense.wi_0.weight"]), approximate="tanh")
        u = torch.nn.functional.linear(h, self.w[prefix + "DenseReluDense.wi_1.weight"])
        return x + torch.nn.functional.linear(g * u, self.w[prefix + "DenseReluDense.wo.weight"])

    def position_bias(self, stack, lq, lk, bidirectional):
        rel = torch.arange(lk)[None, :] - torch.arange(lq)[:, None]
        values = torch.nn.functional.embedding(bucket(rel, bidirectional), self.w[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"])
        return values.permute(2, 0, 1).unsqueeze(0)

    def losses(self, inputs, labels):
        mask_value = torch.finfo(torch.float32).min
        enc_mask = (inputs != 0).float()
        x = self.w["shared.weight"][inputs]
        bias = self.position_bias("encoder", inputs.shape[1], inputs.shape[1], True) + (1 - enc_mask)[:, None, None, :] * mask_value
        for i in range(self.layers):
            p = f"encoder.block.{i}.layer."
            x = x + self.attention(self.norm(x, p + "0.layer_norm.weight"), self.norm(x, p + "0.layer_norm.weight"), p + "0.SelfAttention.", bias)
            x = self.ff(x, p + "1.")
        enc = self.norm(x, "encoder.final_layer_norm.weight")

        dec_in = torch.cat([torch.zeros_like(labels[:, :1]), labels[:, :-1]], 1)
        ld = dec_in.shape[1]
        causal = torch.triu(torch.full((ld, ld), mask_value), 1)[None, None]
        self_bias = self.position_bias("decoder", ld, ld, False) + causal
        cross_bias = (1 - enc_mask)[:, None, None, :] * mask_value
        y = self.w["shared.weight"][dec_in]
        for i in range(self.dlayers):
            p = f"decoder.block.{i}.layer."
            h = self.norm(y, p + "0.layer_norm.weight")
            y = y + self.attention(h, h, p + "0.SelfAttention.", self_bias)
            y = y + self.attention(self.norm(y, p + "1.layer_norm.weight"), enc, p + "1.EncDecAttention.", cross_bias)
            y = self.ff(y, p + "2.")
        y = self.norm(y, "decoder.final_layer_norm.weight")
        logits = torch.nn.functional.linear(y, self.w["lm_head.weight"])
        nll = -torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        label_mask = (labels != 0).float()
        return (nll * label_mask).sum(1) / label_mask.sum(1)


def pad(rows):
    n = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (n - len(r)) for r in rows], dtype=torch.long)


def main():
    if "TORCH_THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["TORCH_THREADS"]))
    model = T5(sys.argv[1])
    examples = json.load(open(sys.argv[2]))
    inputs, labels = pad(examples["inputs"]), pad(examples["labels"])
    print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        if line.strip() != "eval":
            break
        start = time.perf_counter()
        with torch.no_grad():
            losses = model.losses(inputs, labels)
        seconds = time.perf_counter() - start
        print(" ".join([repr(seconds)] + [repr(float(x)) for x in losses]), flush=True)


if __name__ == "__main__":
    main()
