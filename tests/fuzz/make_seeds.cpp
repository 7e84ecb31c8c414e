// tests/fuzz/make_seeds.cpp — writes the seed corpus of every fuzz target (tests/fuzz/corpus/) with
// engram's own writers, so the seeds are exactly the files the readers meet in practice: a
// training checkpoint and a plain safetensors file, IDX images and labels plain and gzip'd, the
// three kinds of tokenizer file, and hand-written YAML, CSV, corpus and matrix files. `make
// fuzz-seeds` builds and runs it; the seeds are committed, so this is only needed to refresh them.
// Each seed is small (a few hundred bytes, the SentencePiece model a few KB): libFuzzer mutates
// small inputs faster, and the readers' branches do not need big ones.
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "apps/common/tokenizer.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"

using namespace engram;
namespace fs = std::filesystem;

static fs::path root = "tests/fuzz/corpus";

static void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / name, std::ios::binary) << bytes;
}

static void put_gz(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  gzFile f = gzopen((root / target / name).c_str(), "wb9");
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

static std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// An IDX file: magic 0x0000 08 D, the big-endian sizes, then the bytes 0, 1, 2, ...
static std::string idx(const std::vector<uint32_t>& dims) {
  std::string s = {0, 0, 8, char(dims.size())};
  size_t n = 1;
  for (uint32_t d : dims) {
    for (int k = 3; k >= 0; --k) s += char((d >> (8 * k)) & 0xff);
    n *= d;
  }
  for (size_t i = 0; i < n; ++i) s += char(i * 37);
  return s;
}

int main() {
  // safetensors: a training checkpoint (Linear 3 -> 2 after one Adam step, a loss scaler, an RNG
  // and a config) and a plain file with every dtype, a scalar and an empty tensor.
  {
    Generator g(7);
    nn::Linear layer(3, 2, true, &g);
    nn::Adam adam(layer.parameters());
    for (Tensor p : layer.parameters()) p.set_grad(full(p.shape(), 0.5));
    adam.step();
    nn::DynamicLossScaler scaler;
    Generator rng(1);
    const std::string tmp = "/tmp/engram-seed.safetensors";
    nn::save_checkpoint(tmp, layer, {&adam, &scaler, &rng}, {{"step", "1"}, {"config", "model:\n  d_model: 3\n"}});
    put("safetensors", "checkpoint.safetensors", read(tmp));
    nn::save_safetensors(tmp, {{"f64", full({2, 2}, 1.5, DType::f64)},
                               {"i64", full({3}, 4, DType::i64)},
                               {"scalar", full({}, 2.0)},
                               {"empty", empty({0, 4})}},
                         {{"note", "every dtype"}});
    put("safetensors", "dtypes.safetensors", read(tmp));
    fs::remove(tmp);
    // By hand, as no writer makes it: zero-element shapes with huge sizes, near the reader's caps.
    std::string h = R"({"__metadata__":{"step":"9"},"big":{"dtype":"I64","shape":[0,4294967296,)"
                    R"(1099511627776],"data_offsets":[0,0]},"x":{"dtype":"F32","shape":[1],)"
                    R"("data_offsets":[0,4]}})";
    h.append((8 - h.size() % 8) % 8, ' ');
    const uint64_t n = h.size();
    const float one = 1.0f;
    put("safetensors", "edge-sizes.safetensors",
        std::string(reinterpret_cast<const char*>(&n), 8) + h +
            std::string(reinterpret_cast<const char*>(&one), 4));
  }
  // IDX: images [2, 3, 3] and labels [4], plain and gzip'd, and a 2-D array.
  put("idx", "images-idx3-ubyte", idx({2, 3, 3}));
  put("idx", "labels-idx1-ubyte", idx({4}));
  put("idx", "matrix-idx2-ubyte", idx({2, 5}));
  put_gz("idx", "images-idx3-ubyte.gz", idx({2, 3, 3}));
  put_gz("idx", "labels-idx1-ubyte.gz", idx({4}));
  // Tokenizers: byte, word (built from a sentence) and a small SentencePiece model.
  {
    const std::string text =
        "the quick brown fox jumps over the lazy dog.\nThe dog sleeps; the fox runs away!\n"
        "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 tab\there\n";
    put("tokenizer", "byte.tok", apps::make_byte_tokenizer()->serialize());
    put("tokenizer", "word.tok", apps::build_word_tokenizer(text, 40, 1)->serialize());
    put("tokenizer", "sentencepiece.tok", apps::train_sentencepiece_tokenizer(text, 300)->serialize());
  }
  // Config: a full file, sections left empty, comments, flow style and quoting.
  put("config", "full.yaml",
      "model:\n  d_model: 128\n  arch: transformer\ntrain:\n  lr: 0.001\n  steps: 500\n"
      "  loss_scaling: false\n  grad_clip: 1.0e+0\ndata:\n  path: \"/tmp/some file.txt\"\n"
      "run:\n  name: test\n");
  put("config", "sparse.yaml", "# only a few keys\nmodel:\ntrain: {lr: 3e-4, loss_scaling: yes}\nrun:\n  name:\n");
  put("config", "overrides.yaml", "train.lr=0.5\nmodel.arch=lstm\ndata.path='x: y'\n");
  // psifr CSV: categories, a quoted comma, an intrusion, CRLF, sessions.
  put("psifr_csv", "categories.csv",
      "subject,list,position,trial_type,item,session,category\n"
      "2,1,1,study,\"TOWEL\",1,obj\n2,1,2,study,\"SMART, CAR\",1,obj\n2,1,3,study,PARIS,1,loc\r\n"
      "2,1,1,recall,paris,1,loc\r\n2,1,2,recall,\"BANANA\",1,\n2,1,3,recall,\"smart, car\",1,obj\n"
      "2,2,1,study,CHAIR,1,obj\n2,2,2,study,Towel,1,obj\n2,2,3,study,LONDON,1,loc\n"
      "2,2,1,recall,PARIS,1,loc\n\n1,4,1,study,LONDON,2,loc\n1,4,2,study,ROME,2,loc\n"
      "1,4,3,study,TOWEL,2,obj\n");
  put("psifr_csv", "plain.csv",
      "subject,list,position,trial_type,item\n5,1,1,study,A\n5,1,2,study,B\n5,1,1,recall,B\n"
      "5,2,1,study,C\n5,2,2,study,A\n5,2,1,recall,A\n5,2,2,recall,D\n");
  // Text corpora: the first byte is the layout (bit 0: a fortune file with a .dat index).
  put("text_corpus", "plain.txt",
      std::string(1, '\0') + "The quick brown fox jumps over the lazy dog.\n"
      "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9" "e \xe2\x80\x94 \xf0\x9f\x98\x80\tend\r\n");
  put("text_corpus", "fortunes.txt",
      std::string(1, '\1') + "A fortune.\n%\nAnother one,\nover two lines.\n%\n%\nLast.\n");
  // Similarity matrix for the pool {apple, Banana, cherry}: names, then rows.
  put("semantic_matrix", "matrix.txt", "apple banana CHERRY date\n0 0.5 0.2 1\n0.5,0,0.7,0\n0.2 0.7 0 3\n1 0 3 0\n");
  put("semantic_matrix", "exact.txt", "cherry,apple,banana\n\n0,1e-3,2\n1e-3,0,-1\n2,-1,0\n");
  return 0;
}
