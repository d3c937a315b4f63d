"""Training: corpus -> tokenizer -> Phi3ForCausalLM -> the files of a checkpoint, deterministically.

Scope: the model's size and configuration, encoding the corpus (only the last answer of a chat is
learned), batching, the training loop, determinism, saving, and `build`, which runs them all.
Determinism: fixed seeds, deterministic algorithms, 2 torch threads and a fixed data order give
byte-identical files on one machine; another CPU or torch version may round differently.
"""

import math
import random
import time
from pathlib import Path

import torch

from training import SEED
from training.corpus import build_corpus
from training.evaluate import evaluate
from training.report import print_report
from training.tokenizer import (
    CONTEXT_LENGTH,
    VOCAB_SIZE,
    make_hf_tokenizer,
    render,
    save_tokenizer,
    train_tokenizer,
)

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "assets" / "tiny-phi3"

DEFAULT_STEPS = 2600
HIDDEN, LAYERS, HEADS = 128, 4, 4
BATCH, LR = 32, 3e-3


def model_config(tokenizer):
    """Phi-3-mini-4k's layout shrunk ~2800x (1.4M parameters): fp32 weights of 5.4 MB."""
    from transformers import Phi3Config

    ids = tokenizer.convert_tokens_to_ids
    return Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=4 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        # Equal lengths select plain RoPE (Phi-3-mini-4k) in the ONNX builder, not LongRoPE.
        max_position_embeddings=CONTEXT_LENGTH,
        original_max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=ids("<s>"),
        eos_token_id=ids("<|endoftext|>"),
        pad_token_id=ids("<|endoftext|>"),
        tie_word_embeddings=False,
        sliding_window=None,
        attn_implementation="eager",  # plain matmuls: deterministic, and as fast as SDPA at this size
    )


def encode_corpus(corpus, tokenizer):
    """Token ids of each templated conversation, and labels that keep only the assistant's last
    answer (its content and its <|end|>); everything else is -100, ignored by the loss. Earlier
    answers are context, as a client sends them back (maybe cut short): not to be learned."""
    assistant, end = tokenizer.convert_tokens_to_ids(["<|assistant|>", "<|end|>"])
    prefix = len(tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"])
    samples = []
    for conv in corpus:
        ids = tokenizer(render(conv["messages"]), add_special_tokens=False)["input_ids"]
        labels, speaking = [-100] * len(ids), False
        for i, token in enumerate(ids):
            if token == assistant:
                labels[:i] = [-100] * i  # forget the earlier answers
                speaking, start = True, i + prefix  # skip "<|assistant|>" "▁" "\n"
            if speaking and i >= start:
                labels[i] = token
            if token == end:
                speaking = False
        samples.append((ids, labels))
    return samples


def batches(samples, batch_size, pad_id, generator):
    """One epoch of right-padded batches, in an order drawn from a seeded generator. Samples of
    similar length are batched together (within windows of 16 batches) to waste less padding."""
    order = torch.randperm(len(samples), generator=generator).tolist()
    window = 16 * batch_size
    groups = []
    for w in range(0, len(order), window):
        by_length = sorted(order[w : w + window], key=lambda j: len(samples[j][0]))
        groups += [by_length[i : i + batch_size] for i in range(0, len(by_length), batch_size)]
    for g in torch.randperm(len(groups), generator=generator).tolist():
        yield _pad([samples[j] for j in groups[g]], pad_id)


def _pad(chunk, pad_id):
    width = max(len(ids) for ids, _ in chunk)
    ids = torch.full((len(chunk), width), pad_id)
    labels = torch.full((len(chunk), width), -100)
    mask = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, (x, y) in enumerate(chunk):
        ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, mask, labels


def train(model, epoch_samples, steps, pad_id):
    """AdamW with warmup and cosine decay. `epoch_samples(e)` gives epoch e's encoded corpus:
    the same canonical pairs each time, with paraphrases drawn afresh."""
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))),
    )
    model.train()
    step, epoch, started, running = 0, 0, time.time(), None
    while step < steps:
        samples, epoch = epoch_samples(epoch), epoch + 1
        for ids, mask, labels in batches(samples, BATCH, pad_id, generator):
            loss = answer_loss(model, ids, mask, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            if step % 50 == 0 or step == steps:
                print(
                    f"step {step:5d}/{steps}  loss {running:.4f}  elapsed {time.time() - started:6.1f}s",
                    flush=True,
                )
            if step == steps:
                break
    model.eval()
    return model


def answer_loss(model, ids, mask, labels):
    """The causal LM loss, with the vocabulary projection computed only where a label is: a
    quarter of the tokens (the answer), which makes a step about 10% faster."""
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    kept = targets != -100
    return torch.nn.functional.cross_entropy(model.lm_head(hidden[kept]), targets[kept])


def set_determinism():
    """Same seeds, same kernels, same thread count: byte-identical weights on one machine."""
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    # Filling every new tensor with NaN only helps to find a kernel that reads memory it never
    # wrote; 5% of a step here. The two-run test checks that the files are the same.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.set_num_threads(2)


def save_model(model, tokenizer, out):
    from transformers import GenerationConfig

    model.save_pretrained(out)
    end, eot = tokenizer.convert_tokens_to_ids(["<|end|>", "<|endoftext|>"])
    # Stop at <|end|> (end of the assistant turn), as Phi-3's own generation_config does.
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=[end, eot], pad_token_id=eot
    ).save_pretrained(out)


def build(out=DEFAULT_OUT, steps=DEFAULT_STEPS, report=True):
    """Corpus -> tokenizer -> Phi3ForCausalLM -> training -> files in `out`; then, with `report`,
    the accuracy on the held-out sets."""
    from transformers import GenerationConfig, Phi3ForCausalLM

    set_determinism()
    corpus = build_corpus()
    tokenizer = make_hf_tokenizer(*train_tokenizer(corpus, VOCAB_SIZE))
    model = Phi3ForCausalLM(model_config(tokenizer))
    params = sum(p.numel() for p in model.parameters())
    print(f"{len(corpus)} conversations an epoch, vocab {len(tokenizer)}, {params / 1e6:.2f}M parameters")

    def epoch_samples(epoch):
        return encode_corpus(corpus if epoch == 0 else build_corpus(epoch=epoch), tokenizer)

    train(model, epoch_samples, steps, tokenizer.pad_token_id)
    Path(out).mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out)
    save_tokenizer(tokenizer, out)
    if report:  # as the checkpoint will answer: stopping at <|end|>
        model.generation_config = GenerationConfig.from_pretrained(out)
        print_report(evaluate(model, tokenizer))
    return Path(out)
