// tests/test_harness.cpp — the sandbox harness (apps/common): config validation and overrides,
// tokenizer round trips (byte, word, SentencePiece), corpus reading and splitting, batching and
// its corruption checks, exact resume of a training run, the files a run leaves, and the app's
// one-line errors with exit code 2.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/test_util.h"
#include "apps/common/config.h"
#include "apps/common/lm.h"
#include "apps/common/lm_app.h"
#include "apps/common/metrics.h"
#include "apps/common/text_data.h"
#include "apps/common/tokenizer.h"
#include "apps/common/trainer.h"
#include "autograd/tape.h"

using namespace engram;
using namespace engram::apps;
namespace fs = std::filesystem;
using engram::testing::TempDir;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// The message of the engram::Error that f throws ("" when it throws none).
template <class F> std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A small deterministic English-like corpus (~24 KB): sentences built from word lists.
std::string tiny_corpus() {
  const char* subjects[] = {"The cat", "A dog", "My friend", "The old man", "Every child", "She"};
  const char* verbs[] = {"likes", "sees", "wants", "finds", "remembers", "keeps"};
  const char* objects[] = {"the red ball.", "a quiet house.", "the long road.", "some fresh bread.",
                           "the bright moon.", "an open door."};
  std::string text;
  uint64_t x = 12345;
  for (int i = 0; i < 900; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    text += fmt::format("{} {} {}{}", subjects[(x >> 20) % 6], verbs[(x >> 30) % 6],
                        objects[(x >> 40) % 6], (x >> 50) % 4 == 0 ? "\n" : " ");
  }
  return text;
}

// A config for a tiny, fast run on `data` (a few milliseconds per step).
Config tiny_config(const std::string& data, const std::string& out, const std::string& kind = "crsd") {
  Config cfg(lm_schema("harness_test"));
  for (const char* s : {"model.d_model=16", "model.layers=1", "model.d_mem=8", "model.reservoir=16",
                        "model.slots=4", "model.heads=2", "train.batch=2", "train.seq_len=16",
                        "train.steps=8", "train.warmup=2", "train.eval_every=4",
                        "train.eval_batches=2", "train.final_eval_batches=4",
                        "train.checkpoint_every=4", "train.log_every=2", "sample.length=20",
                        "run.plots=false"})
    cfg.apply_override(s);
  cfg.set("data.path", data, "test");
  cfg.set("run.out", out, "test");
  cfg.set("model.kind", kind, "test");
  return cfg;
}

// Runs the app in-process with stdout and stderr captured to files.
struct AppRun {
  int code;
  std::string out, err;
};
AppRun run_app(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "crsd_tiny");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  std::fflush(stdout);
  std::fflush(stderr);
  int saved_out = ::dup(1), saved_err = ::dup(2);
  int fo = ::open(dir.file("stdout.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int fe = ::open(dir.file("stderr.txt").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(fo, 1);
  ::dup2(fe, 2);
  int code = run_lm_app({"crsd_tiny", "test", ""}, int(argv.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(saved_out, 1);
  ::dup2(saved_err, 2);
  for (int fd : {fo, fe, saved_out, saved_err}) ::close(fd);
  return {code, read_text(dir.file("stdout.txt")), read_text(dir.file("stderr.txt"))};
}

}  // namespace

// ---------------------------------------------------------------- config

TEST_CASE("harness: config defaults, YAML sections and --set overrides") {
  Config cfg(lm_schema("t"));
  CHECK(cfg.get_string("model.kind") == "crsd");
  CHECK(cfg.get_int("model.d_model") == 128);
  CHECK(cfg.get_string("run.out") == "runs/t");
  cfg.merge_yaml("model:\n  kind: lstm\n  d_model: 64\ntrain:\n  lr: 1e-3\n  loss_scaling: no\n",
                 "inline.yaml");
  CHECK(cfg.get_string("model.kind") == "lstm");
  CHECK(cfg.get_int("model.d_model") == 64);
  CHECK(cfg.get_real("train.lr") == doctest::Approx(1e-3));
  CHECK_FALSE(cfg.get_bool("train.loss_scaling"));
  cfg.apply_override("model.d_model=256");
  cfg.apply_override("sample.prompt=Once upon a time");
  CHECK(cfg.get_int("model.d_model") == 256);
  CHECK(cfg.get_string("sample.prompt") == "Once upon a time");
  // to_yaml writes every key; reading it back gives the same config.
  Config back(lm_schema("t"));
  back.merge_yaml(cfg.to_yaml(), "round trip");
  CHECK(back.diff(cfg).empty());
  CHECK(cfg.diff(Config(lm_schema("t"))) ==
        std::vector<std::string>{"model.kind", "model.d_model", "train.lr", "train.loss_scaling",
                                 "sample.prompt"});
  // The help table lists every key with its type, default and range.
  std::string help = cfg.schema().help();
  CHECK(help.find("model.d_model") != std::string::npos);
  CHECK(help.find("[4, 4096]") != std::string::npos);
  CHECK(help.find("crsd|lstm|transformer") != std::string::npos);
}

TEST_CASE("harness: config errors name the source, the line and the key") {
  auto fresh = [] { return Config(lm_schema("t")); };
  std::string e = error_of([&] { fresh().merge_yaml("model:\n  d_modle: 3\n", "a.yaml"); });
  CHECK(e == "a.yaml line 2: unknown key 'model.d_modle' (did you mean 'model.d_model'?)");
  e = error_of([&] { fresh().merge_yaml("model:\n  d_model: big\n", "a.yaml"); });
  CHECK(e == "a.yaml line 2: 'model.d_model' must be an integer in [4, 4096], got 'big'");
  e = error_of([&] { fresh().merge_yaml("train:\n  lr: -1\n", "a.yaml"); });
  CHECK(e.find("'train.lr' must be a number in") != std::string::npos);
  e = error_of([&] { fresh().merge_yaml("model:\n  kind: gru\n", "a.yaml"); });
  CHECK(e == "a.yaml line 2: 'model.kind' must be one of crsd|lstm|transformer|local_attention|cmr_parallel|cmr_series|titans_mag|hybrid|memnet|s4d|s4|s5|mamba|linoss|retnet|samba, got 'gru'");
  e = error_of([&] { fresh().merge_yaml("model: [1, 2]\n", "a.yaml"); });
  CHECK(e == "a.yaml line 1: 'model' must be a mapping of its keys, got a list");
  e = error_of([&] { fresh().merge_yaml("modle:\n  d_model: 3\n", "a.yaml"); });
  CHECK(e.find("unknown key 'modle'") != std::string::npos);
  e = error_of([&] { fresh().merge_yaml("model:\n  d_model: [1]\n", "a.yaml"); });
  CHECK(e == "a.yaml line 2: 'model.d_model' must be an integer in [4, 4096], got a list");
  e = error_of([&] { fresh().merge_yaml("model:\n  layers: 2\n  layers: 3\n", "a.yaml"); });
  CHECK(e == "a.yaml line 3: 'model.layers' is given twice (also on line 2)");
  e = error_of([&] { fresh().merge_yaml("model:\n  d_model: [1\n", "bad.yaml"); });
  CHECK(e.starts_with("bad.yaml line "));
  CHECK(e.find("bad YAML") != std::string::npos);
  e = error_of([&] { fresh().merge_yaml("- 1\n- 2\n", "a.yaml"); });
  CHECK(e.find("expected a mapping of sections") != std::string::npos);
  e = error_of([&] { fresh().apply_override("train.batchsize=4"); });
  CHECK(e == "--set train.batchsize=4: unknown key 'train.batchsize' (did you mean 'train.batch'?)");
  e = error_of([&] { fresh().apply_override("train.batch=0"); });
  CHECK(e == "--set train.batch=0: 'train.batch' must be an integer in [1, 4096], got '0'");
  e = error_of([&] { fresh().apply_override("train.batch"); });
  CHECK(e.find("expected key=value") != std::string::npos);
  e = error_of([&] { fresh().apply_override("model=3"); });
  CHECK(e.find("'model' is a section") != std::string::npos);
  e = error_of([&] { fresh().merge_yaml_file("/nonexistent/x.yaml"); });
  CHECK(e == "config file '/nonexistent/x.yaml' cannot be opened (missing or unreadable)");
}

TEST_CASE("harness: configs/tiny.yaml is the built-in default; the baselines parse") {
  const std::string dir = "apps/crsd_tiny/configs/";
  if (!fs::exists(dir + "tiny.yaml")) {
    MESSAGE("run the tests from the repository root to check apps/crsd_tiny/configs");
    return;
  }
  Config tiny(lm_schema("crsd_tiny"));
  tiny.merge_yaml_file(dir + "tiny.yaml");
  CHECK(tiny.diff(Config(lm_schema("crsd_tiny"))).empty());
  for (const char* kind : {"lstm", "transformer", "s4d", "s4", "s5", "mamba", "linoss", "retnet",
                           "samba"}) {
    Config c(lm_schema("crsd_tiny"));
    c.merge_yaml_file(dir + kind + ".yaml");
    CHECK(c.get_string("model.kind") == kind);
  }
  Config reset(lm_schema("crsd_tiny"));  // LinOSS from a zero state every batch (its README row)
  reset.merge_yaml_file(dir + "linoss_reset.yaml");
  CHECK(reset.get_string("model.kind") == "linoss");
  CHECK_FALSE(reset.get_bool("train.carry_state"));
}

// ---------------------------------------------------------------- tokenizers

TEST_CASE("harness: byte tokenizer round trips every byte") {
  auto tok = make_byte_tokenizer();
  std::string all;
  for (int c = 0; c < 256; ++c) all += char(c);
  std::vector<int32_t> ids = tok->encode(all);
  CHECK(tok->vocab_size() == 256);
  CHECK(ids[65] == 65);
  CHECK(tok->decode(ids) == all);
  CHECK(tok->token_repr('\n') == "\\n");
  CHECK(deserialize_tokenizer(tok->serialize(), "s")->kind() == "byte");
}

TEST_CASE("harness: word tokenizer builds a vocabulary with <unk>, a cutoff, save and load") {
  CHECK(word_pieces("Hello, world!\n  ok") ==
        std::vector<std::string_view>{"Hello", ",", " world", "!", "\n", " ", " ok"});
  const std::string train = "the cat sat on the mat. the cat ran.\nthe end";
  auto tok = build_word_tokenizer(train, 100, 2);  // pieces seen twice or more
  // the, " cat", " the", ".", and <unk>: " sat", " on", ... occur once
  CHECK(tok->vocab_size() == 5);
  CHECK(tok->decode(tok->encode("the cat.")) == "the cat.");
  std::vector<int32_t> ids = tok->encode("the dog.");
  CHECK(ids[1] == 0);  // " dog" is unknown
  CHECK(tok->decode(ids) == "the<unk>.");
  auto capped = build_word_tokenizer(train, 3, 1);
  CHECK(capped->vocab_size() == 3);

  TempDir dir;
  auto full = build_word_tokenizer("a\\b\tc \xc3\xa9t\xc3\xa9 x\ny", 100, 1);
  full->save(dir.file("vocab.txt"));
  auto loaded = load_tokenizer(dir.file("vocab.txt"));
  const std::string text = "y\na\\b\tc \xc3\xa9t\xc3\xa9 x";
  CHECK(loaded->kind() == "word");
  CHECK(loaded->vocab_size() == full->vocab_size());
  CHECK(loaded->encode(text) == full->encode(text));
  CHECK(loaded->decode(loaded->encode(text)) == text);
  // A damaged vocabulary file is refused with its line.
  dir.write("dup.txt", "engram-tokenizer word\nab\ncd\nab\n");
  CHECK(error_of([&] { load_tokenizer(dir.file("dup.txt")); }) ==
        fmt::format("{} line 4: piece 'ab' is listed twice (also line 2)", dir.file("dup.txt")));
  dir.write("junk.txt", "hello\n");
  CHECK(error_of([&] { load_tokenizer(dir.file("junk.txt")); }).find("not a tokenizer file") !=
        std::string::npos);
}

TEST_CASE("harness: sentencepiece tokenizer trains on a tiny corpus and round trips") {
  const std::string corpus = tiny_corpus();
  auto tok = train_sentencepiece_tokenizer(corpus, 300);
  CHECK(tok->kind() == "sentencepiece");
  CHECK(tok->vocab_size() > 260);
  const std::string text = "The cat finds the bright moon.\nA dog keeps an open door. Zebra~\n\n";
  std::vector<int32_t> ids = tok->encode(text);
  CHECK(ids.size() < text.size());  // pieces longer than a byte were learned
  CHECK(tok->decode(ids) == text);  // byte fallback and the newline id lose nothing
  TempDir dir;
  tok->save(dir.file("sp.txt"));
  auto loaded = load_tokenizer(dir.file("sp.txt"));
  CHECK(loaded->encode(text) == ids);
  CHECK(loaded->decode(ids) == text);
  CHECK(error_of([] { train_sentencepiece_tokenizer("abc", 100); }).find("must exceed 260") !=
        std::string::npos);
}

// ---------------------------------------------------------------- data

TEST_CASE("harness: corpus files, directories, globs, fortune separators and refusals") {
  TempDir dir;
  dir.write("b.txt", "bee\n");
  dir.write("a.txt", "ay\n");
  dir.write("quotes", "one\n%\ntwo\n%\n");
  dir.write("quotes.dat", std::string(24, '\0'));  // a strfile index: quotes is a fortune file
  dir.write("quotes.u8", "skipped\n");
  Corpus c = read_corpus(dir.path.string());
  CHECK(c.text == "ay\nbee\none\ntwo\n");
  CHECK(c.files.size() == 3);
  CHECK_FALSE(c.enwik8);
  CHECK(read_corpus(dir.file("b.txt") + "," + dir.file("a.txt")).text == "bee\nay\n");
  CHECK(read_corpus(dir.file("*.txt")).text == "ay\nbee\n");
  CHECK(error_of([&] { read_corpus(dir.file("missing.txt")); }) ==
        fmt::format("data file '{}' not found", dir.file("missing.txt")));
  CHECK(error_of([&] { read_corpus(dir.file("*.csv")); }).find("matches no file") != std::string::npos);
  dir.write("bin.dat2", std::string(100, '\0') + "text");
  CHECK(error_of([&] { read_corpus(dir.file("bin.dat2")); }).find("looks binary: 96.2% of its 104 "
                                                                   "bytes are NUL") != std::string::npos);
  dir.write("empty.txt", "");
  CHECK(error_of([&] { read_corpus(dir.file("empty.txt")); }).find("no text") != std::string::npos);
}

TEST_CASE("harness: random bytes are refused as binary; UTF-8 text passes; the share is a key") {
  TempDir dir;
  Generator g(3);
  std::string random(300000, ' ');
  for (char& c : random) c = char(g.next_u64() & 0xFF);
  const std::string bin = dir.write("random.bin", random);
  const double share = non_text_share(random);
  CHECK(share > 0.4);  // ~54%: 29 of 128 ASCII codes are control bytes, most high bytes invalid UTF-8
  std::string e = error_of([&] { read_corpus(bin); });
  CAPTURE(e);
  CHECK(e.find(fmt::format("data file '{}' looks binary", bin)) != std::string::npos);
  CHECK(e.find("data.max_binary_share") != std::string::npos);
  CHECK(read_corpus(bin, 1.0, 1.0).text.size() == random.size());  // accepted deliberately
  // text: ASCII with tabs and CR LF, UTF-8 of 2, 3 and 4 bytes; invalid: a lone continuation,
  // an overlong lead, a truncated sequence, and control bytes
  CHECK(non_text_share("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\tok\r\n") == 0.0);
  CHECK(non_text_share("\x80") == 1.0);
  CHECK(non_text_share("\xc0\xaf") == 1.0);
  CHECK(non_text_share("ab\xe2\x82") == 0.5);
  CHECK(non_text_share(std::string("a\x01\x1b\x7f", 4)) == 0.75);
  // through the app: a non-zero exit and one line naming the file
  AppRun r = run_app(dir, {"--data", bin, "--steps", "1", "--out", dir.file("run")});
  CHECK(r.code == 2);
  CHECK(r.err.find("looks binary") != std::string::npos);
}

TEST_CASE("harness: the split is deterministic and partitions the text") {
  Corpus c;
  c.text = tiny_corpus();
  TextSplits a = split_text(c, 0.05, 0.05), b = split_text(c, 0.05, 0.05);
  CHECK(a.train == b.train);
  CHECK(a.val == b.val);
  CHECK(a.test == b.test);
  CHECK(a.train.size() + a.val.size() + a.test.size() == c.text.size());
  const double n = double(c.text.size());
  CHECK(double(a.val.size()) / n == doctest::Approx(0.05).epsilon(0.02));
  CHECK(double(a.train.size()) / n == doctest::Approx(0.90).epsilon(0.02));
  // Blocks of min(4096, N / 100) bytes: the first 90 of every 100 go to train.
  const size_t block = c.text.size() / 100;
  CHECK(a.train.substr(0, 90 * block) == c.text.substr(0, 90 * block));
  CHECK(a.val.substr(0, block) == c.text.substr(90 * block, block));
  // enwik8 gets the standard 90M / 5M / 5M split.
  Corpus e;
  e.text.assign(size_t(kEnwik8Bytes), 'x');
  e.text[90'000'000] = 'v';
  e.enwik8 = true;
  TextSplits s = split_text(e, 0.2, 0.2);
  CHECK(s.train.size() == 90'000'000);
  CHECK(s.val.size() == 5'000'000);
  CHECK(s.test.size() == 5'000'000);
  CHECK(s.val[0] == 'v');
  CHECK(error_of([&] { split_text(c, 0.6, 0.5); }).find("val + test < 1") != std::string::npos);
}

TEST_CASE("harness: batches are [B, T] contiguous streams with a padded tail") {
  TokenSplit s{"train", {}, 0};
  for (int32_t i = 0; i < 103; ++i) s.ids.push_back(i);  // id = position, to see the layout
  StreamBatcher sb(s, /*batch=*/2, /*seq_len=*/8);
  CHECK(sb.stream_length() == 51);      // 103 / 2, the last token dropped
  CHECK(sb.batches_per_epoch() == 7);   // ceil(50 / 8)
  Batch b0 = sb.get(0), b1 = sb.get(1), last = sb.get(6);
  CHECK(b0.inputs.shape() == Shape{2, 8});
  CHECK(b0.targets.shape() == Shape{2, 8});
  std::vector<int64_t> in0 = b0.inputs.to_vector<int64_t>(), tg0 = b0.targets.to_vector<int64_t>();
  CHECK(in0[0] == 0);
  CHECK(tg0[0] == 1);      // targets are the inputs shifted by one
  CHECK(in0[8] == 51);     // row 1 is the second stream
  CHECK(b1.inputs.to_vector<int64_t>()[0] == 8);  // row 0 of batch 1 continues row 0 of batch 0
  std::vector<int64_t> tl = last.targets.to_vector<int64_t>();
  CHECK(tl[0] == 49);
  CHECK(tl[1] == 50);
  CHECK(tl[2] == kIgnoreIndex);  // past the end of the stream: padding, ignored by the loss
  CHECK(last.real_targets == 4);
  CHECK(last.pad_targets == 12);
  CHECK(sb.pad_share() == doctest::Approx(1.0 - 50.0 / 56.0));
  CHECK(error_of([&] { sb.get(7); }).find("out of range") != std::string::npos);
}

TEST_CASE("harness: split checks catch PAD flooding, empty splits and bad ids") {
  TokenSplit s{"val", std::vector<int32_t>(40, 1), 40};
  StreamBatcher flooded(s, 2, 16);  // streams of 20 tokens padded to 2 segments of 16: 41% padding
  std::string e = error_of([&] { check_split(flooded, 256, 0.05); });
  CHECK(e.starts_with("split 'val': 40.6% of its target positions would be padding (limit 5.0%"));
  CHECK_NOTHROW(check_split(flooded, 256, 0.5));
  TokenSplit none{"test", {}, 0};
  CHECK(error_of([&] { check_split(StreamBatcher(none, 2, 16), 256, 0.05); })
            .starts_with("split 'test' is empty"));
  TokenSplit few{"val", {1, 2, 3}, 3};
  CHECK(error_of([&] { check_split(StreamBatcher(few, 2, 16), 256, 0.05); })
            .find("too few for 2 streams") != std::string::npos);
  TokenSplit bad{"train", std::vector<int32_t>(64, 3), 64};
  bad.ids[10] = 300;
  CHECK(error_of([&] { check_split(StreamBatcher(bad, 2, 16), 256, 1.0); }) ==
        "split 'train': token 10 has id 300, outside the vocabulary [0, 256)");
}

// ---------------------------------------------------------------- models and training

TEST_CASE("harness: every model kind shares one interface; generation is seeded") {
  TempDir dir;
  for (const std::string kind : {"crsd", "lstm", "transformer", "local_attention", "cmr_parallel",
                                 "cmr_series", "titans_mag", "hybrid", "memnet", "s4d", "s4", "s5",
                                 "mamba", "linoss", "retnet", "samba"}) {
    CAPTURE(kind);  // a std::string: doctest prints a const char* as a pointer
    Config cfg = tiny_config("unused", dir.path.string(), kind);
    Generator gen(1);
    auto lm = make_language_model(cfg, 256, &gen);
    CHECK(lm->kind() == kind);
    LMState st = lm->initial_state(2);
    Tensor ids = randint(0, 256, {2, 16}, &gen);
    Tensor logits = lm->forward(ids, st);
    CHECK(logits.shape() == Shape{2, 16, 256});
    nn::NamedTensors stages;
    LMState st2 = lm->initial_state(2);
    Tensor traced = lm->forward_traced(ids, st2, stages);
    CHECK(stages.size() >= 3);
    CHECK(traced.to_vector<float>() == logits.to_vector<float>());
    std::vector<int32_t> prompt{84, 104, 101};
    Generator g1(7), g2(7);
    std::vector<int32_t> a = generate(*lm, prompt, 12, 0.8, g1), b = generate(*lm, prompt, 12, 0.8, g2);
    CHECK(a.size() == 12);
    CHECK(a == b);
  }
}

TEST_CASE("harness: N steps, resume, N steps gives the losses of 2N steps bit for bit") {
  TempDir dir;
  const std::string data = dir.write("corpus.txt", tiny_corpus());
  std::FILE* quiet = std::tmpfile();
  for (const std::string kind : {"crsd", "lstm", "transformer", "cmr_parallel", "hybrid", "memnet",
                                 "s4d", "s4", "s5", "mamba", "linoss", "retnet", "samba"}) {
    CAPTURE(kind);  // a std::string: doctest prints a const char* as a pointer
    const std::string a_dir = dir.file(fmt::format("{}_a", kind)), b_dir = dir.file(fmt::format("{}_b", kind));
    Config a = tiny_config(data, a_dir, kind);
    a.apply_override("model.dropout=0.1");  // the RNG state must be restored too
    if (kind == "hybrid") {  // the shared bank, and a policy whose state depends on the reads
      a.apply_override("model.memory_placement=shared");
      a.apply_override("model.memory_policy=lowest_use");
      a.apply_override("model.memory_slots=8");
    }
    if (kind == "s5") a.apply_override("model.ssm_blocks=2");  // 2 blocks of 32 modes at d 16
    if (kind == "retnet") a.apply_override("model.retnet_chunk=5");  // chunks that do not divide T
    if (kind == "memnet") {  // a segment that straddles calls, dreams, and the random policy
      a.apply_override("model.memnet_segment=3");
      a.apply_override("model.memnet_dream_every=2");
      a.apply_override("model.memnet_slots=8");
    }
    TrainResult full = train_language_model(a, {"", false, quiet});
    REQUIRE(full.losses.size() == 8);
    const std::string ckpt = a_dir + "/checkpoints/step_00000004.safetensors";
    REQUIRE(fs::exists(ckpt));
    Config b = checkpoint_config(ckpt, a.schema_ptr());
    b.set("run.out", b_dir, "test");
    TrainResult resumed = train_language_model(b, {ckpt, false, quiet});
    REQUIRE(resumed.losses.size() == 4);
    for (size_t i = 0; i < 4; ++i) CHECK(resumed.losses[i] == full.losses[4 + i]);  // exact
    CHECK(resumed.train_loss == full.train_loss);
    CHECK(resumed.val.loss == full.val.loss);
    CHECK(resumed.sample == full.sample);
    // A resumed run may not change what the checkpoint's numbers depend on.
    Config c = b;
    c.set("train.lr", "0.1", "test");
    CHECK(error_of([&] { train_language_model(c, {ckpt, false, quiet}); })
              .find("'train.lr' cannot change when resuming") != std::string::npos);
  }
  std::fclose(quiet);
}

TEST_CASE("harness: a run writes metrics (CSV, JSONL), config, tokenizer, checkpoints, model") {
  TempDir dir;
  const std::string data = dir.write("corpus.txt", tiny_corpus()), out = dir.file("run");
  Config cfg = tiny_config(data, out);
  cfg.set("data.tokenizer", "word", "test");
  cfg.set("data.vocab_size", "64", "test");
  cfg.set("data.max_pad_share", "0.2", "test");  // the val split is only ~300 words
  std::FILE* log = std::tmpfile();
  TrainResult r = train_language_model(cfg, {"", true, log});
  CHECK(r.step == 8);
  CHECK(std::isfinite(r.val.bpc));
  CHECK(r.val.bpc < r.val.loss / std::log(2.0));  // a word is several characters
  std::string csv = read_text(out + "/metrics.csv");
  CHECK(csv.starts_with("step,split,loss,bpc,ppl,acc,lr,grad_norm,tokens_per_s,seconds\n"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 8 + 2);  // header, 8 steps, 2 evals
  CHECK(csv.find("\n4,val,") != std::string::npos);
  std::string jsonl = read_text(out + "/metrics.jsonl");
  CHECK(jsonl.starts_with("{\"step\":1,\"split\":\"train\",\"loss\":"));
  CHECK(std::count(jsonl.begin(), jsonl.end(), '\n') == 10);
  auto tok = load_tokenizer(out + "/tokenizer.txt");
  CHECK(tok->kind() == "word");
  CHECK(tok->vocab_size() == 42);  // <unk> + the 41 pieces of the corpus seen at least twice
  Config back(lm_schema("harness_test"));
  back.merge_yaml_file(out + "/config.yaml");
  CHECK(back.diff(cfg).empty());
  CHECK(fs::exists(out + "/checkpoints/step_00000004.safetensors"));
  CHECK(fs::exists(out + "/checkpoints/step_00000008.safetensors"));
  CHECK(fs::exists(out + "/model.safetensors"));
  // The log is plain lines (not a terminal): no carriage returns; --trace showed the step.
  std::rewind(log);
  std::string text;
  for (int c; (c = std::fgetc(log)) != EOF;) text += char(c);
  std::fclose(log);
  CHECK(text.find('\r') == std::string::npos);
  CHECK(text.find("step 2/8 | loss ") != std::string::npos);
  CHECK(text.find("trace: stage outputs of step 1:") != std::string::npos);
  CHECK(text.find("CRSDLanguageModel") != std::string::npos);  // the module summary
  // Resuming into the same directory drops the metrics rows after the checkpoint first.
  MetricsLog trimmed(out, 4);
  trimmed.flush();
  csv = read_text(out + "/metrics.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 4 + 1);
}

TEST_CASE("harness: progress lines and durations") {
  std::FILE* f = std::tmpfile();
  ProgressLine p(10, 5, f);
  CHECK_FALSE(p.is_tty());
  for (int s = 1; s <= 10; ++s) p.step(s, 1.5, 2.0, 1000, 10 - s);
  p.print("done");
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text += char(c);
  std::fclose(f);
  CHECK(text == "step 5/10 | loss 1.5000 | bpc 2.000 | 1000 tok/s | ETA 5.0s\n"
                "step 10/10 | loss 1.5000 | bpc 2.000 | 1000 tok/s | ETA 0.0s\ndone\n");
  CHECK(format_duration(74) == "1m14s");
  CHECK(format_duration(7500) == "2h05m");
}

// ---------------------------------------------------------------- the app's errors

TEST_CASE("harness: the app turns every failure into one line and exit code 2") {
  TempDir dir;
  const std::string data = dir.write("corpus.txt", tiny_corpus());
  auto one_error_line = [](const AppRun& r) {
    return r.code == 2 && r.err.starts_with("error: ") &&
           std::count(r.err.begin(), r.err.end(), '\n') == 1;
  };
  AppRun r = run_app(dir, {"--config", dir.write("bad.yaml", "model:\n  d_model: [\n")});
  CHECK(one_error_line(r));
  CHECK(r.err.find("bad YAML") != std::string::npos);
  r = run_app(dir, {"--config", dir.write("unknown.yaml", "train:\n  stepz: 3\n")});
  CHECK(one_error_line(r));
  CHECK(r.err.find("unknown key 'train.stepz' (did you mean 'train.steps'?)") != std::string::npos);
  r = run_app(dir, {"--config", dir.write("type.yaml", "train:\n  steps: many\n")});
  CHECK(one_error_line(r));
  r = run_app(dir, {"--data", dir.file("nope.txt")});
  CHECK(one_error_line(r));
  CHECK(r.err == fmt::format("error: data file '{}' not found\n", dir.file("nope.txt")));
  r = run_app(dir, {"--set", "model.kind=rnn"});
  CHECK(one_error_line(r));
  r = run_app(dir, {"--bogus-flag"});
  CHECK(one_error_line(r));
  r = run_app(dir, {"--resume", dir.write("corrupt.safetensors", "this is not a checkpoint")});
  CHECK(one_error_line(r));
  CHECK(r.err.find("corrupt.safetensors") != std::string::npos);
  // Resuming with a changed model setting is refused by name.
  Config cfg = tiny_config(data, dir.file("run"));
  std::FILE* quiet = std::tmpfile();
  train_language_model(cfg, {"", false, quiet});
  std::fclose(quiet);
  const std::string ckpt = dir.file("run/checkpoints/step_00000004.safetensors");
  r = run_app(dir, {"--resume", ckpt, "--set", "model.d_model=32"});
  CHECK(one_error_line(r));
  CHECK(r.err.find("'model.d_model' cannot change when resuming") != std::string::npos);
  r = run_app(dir, {"--resume", dir.file("run/model.safetensors")});
  CHECK(one_error_line(r));
  CHECK(r.err.find("not a training checkpoint") != std::string::npos);
  std::string bytes = read_text(ckpt);
  r = run_app(dir, {"--resume", dir.write("truncated.safetensors", bytes.substr(0, bytes.size() / 2))});
  CHECK(one_error_line(r));
  CHECK(r.err.find("truncated.safetensors") != std::string::npos);
  r = run_app(dir, {"--help-config"});
  CHECK(r.code == 0);
  CHECK(r.out.find("sample.temperature") != std::string::npos);
  // And a good run ends with exactly one final line, then the sample.
  r = run_app(dir, {"--resume", ckpt, "--out", dir.file("resumed")});
  CHECK(r.code == 0);
  CHECK(r.out.find("\nfinal: step=8 train_loss=") != std::string::npos);
  CHECK(r.out.find("\nsample (temperature 0.8, seed 0):\nThe ") != std::string::npos);
}

TEST_CASE("harness: a NaN stops the run with one line naming the step; anomaly mode names the op") {
  TempDir dir;
  const std::string data = dir.write("corpus.txt", tiny_corpus());
  std::FILE* quiet = std::tmpfile();
  Config cfg = tiny_config(data, dir.file("run"), "lstm");
  cfg.apply_override("train.steps=4");
  train_language_model(cfg, {"", false, quiet});
  // A NaN in the head's bias (as a blown-up run leaves it) makes the next loss NaN.
  const std::string ckpt = dir.file("run/checkpoints/step_00000004.safetensors");
  nn::SafetensorsFile f = nn::load_safetensors(ckpt);
  bool poisoned = false;
  for (auto& [name, t] : f.tensors)
    if (name == "head.bias") t.data<float>()[0] = NAN, poisoned = true;
  REQUIRE(poisoned);
  const std::string bad = dir.file("poisoned.safetensors");
  nn::save_safetensors(bad, f.tensors, f.metadata);
  Config resumed = checkpoint_config(bad, cfg.schema_ptr());
  resumed.set("train.steps", "8", "test");
  resumed.set("run.out", dir.file("resumed"), "test");
  std::string e = error_of([&] { train_language_model(resumed, {bad, false, quiet}); });
  CAPTURE(e);
  CHECK(e.find("training diverged at step 5: the loss is nan") != std::string::npos);
  CHECK(e.find("last good checkpoint is") != std::string::npos);
  CHECK(!fs::exists(dir.file("resumed/checkpoints/step_00000008.safetensors")));
  resumed.set("train.anomaly", "true", "test");
  e = error_of([&] { train_language_model(resumed, {bad, false, quiet}); });
  CAPTURE(e);
  CHECK(e.find("anomaly: op '") != std::string::npos);
  CHECK(!anomaly_mode());  // restored after the run
  std::fclose(quiet);
}

TEST_CASE("harness: a loss far above its running minimum is warned about once") {
  TempDir dir;
  const std::string data = dir.write("corpus.txt", tiny_corpus());
  // the recipe for a silent blow-up: lr 10, no clipping, no loss scaling
  Config cfg = tiny_config(data, dir.file("run"), "transformer");
  for (const char* s : {"train.lr=10", "train.loss_scaling=false", "train.grad_clip=0",
                        "train.steps=40", "train.warmup=0", "train.eval_every=0"})
    cfg.apply_override(s);
  std::FILE* out = std::tmpfile();
  train_language_model(cfg, {"", false, out});
  std::rewind(out);
  std::string text;
  for (int c; (c = std::fgetc(out)) != EOF;) text += char(c);
  std::fclose(out);
  CAPTURE(text);
  const size_t first = text.find("warning: step ");
  CHECK(first != std::string::npos);
  CHECK(text.find("is far above its running minimum") != std::string::npos);
  CHECK(text.find("warning: step ", first + 1) == std::string::npos);  // once
}
