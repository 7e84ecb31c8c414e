// apps/cmr_free_recall/main.cpp — classic CMR (Polyn, Norman & Kahana 2009) on real free-recall
// data: the measured curves, a maximum-likelihood fit by gradient descent on the differentiable
// likelihood (memory/cmr/fit.h), and the fitted model simulated against the data.
//
//   build/apps/cmr_free_recall [--data CSV] [--mode analyse|fit|simulate|recover] [--config FILE]
//                              [--set key=value ...] [--seed S] [--out DIR] [--steps N]
//
//   analyse   SPC, PFR, lag-CRP (-5..+5) and category CRP of the data set (psifr's definitions,
//             memory/cmr/analysis.h), printed and plotted.
//   fit       analyse, then fit CMR's softmax-rule likelihood pooled over every list (several
//             restarts), then simulate the fitted model (sim.replications runs of every list) and
//             plot simulated against observed on the same axes; params.json holds the fit.
//   simulate  simulate the model.* parameters (or sim.params=polyn2009, Polyn 2009's "CMR Full"
//             with the leaky competing accumulator) on the data set's lists and compare.
//   recover   parameter recovery: simulate data from model.* on the data set's lists, fit it, and
//             print true against recovered parameters.
// Data: psifr's long CSV (apps/common/psifr_csv.h); ../shared/data/free-recall/ holds PEERS and
// Morton et al. 2013. Semantic associations (semantic.source): category labels when the data has
// them, else LSA over Debian's fortunes corpus (memory/cmr/semantic.h).
// Ends with one `final: key=value ...` line; outputs go to run.out.
// --distributed under mpirun -np N: the fit's likelihood is split over the ranks by list (each
// rank's gradient summed, nn/distributed.h), the rest runs on every rank alike; rank 0 prints and
// writes.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/common/app_main.h"
#include "apps/common/config.h"
#include "apps/common/curve_plot.h"
#include "apps/common/psifr_csv.h"
#include "autograd/ops.h"
#include "memory/cmr/analysis.h"
#include "memory/cmr/fit.h"
#include "memory/cmr/semantic.h"

using namespace engram;
using namespace engram::apps;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<const Schema> schema() {
  const double big = 1e9;
  cmr::CMRParams d;
  std::vector<FieldSpec> f = {
      string_field("data.path", "../shared/data/free-recall/peers_notask.csv", "psifr long CSV"),
      int_field("data.max_subjects", 0, 0, 1000000, "use the first N subjects only (0 = all)"),
      choice_field("semantic.source", "auto", {"auto", "none", "categories", "corpus", "file"},
                   "SEM: auto = categories when the data has them, else corpus"),
      string_field("semantic.file", "", "similarity matrix file (semantic.source=file)"),
      string_field("semantic.corpus", "/usr/share/games/fortunes", "text corpus for LSA"),
      int_field("semantic.dims", 100, 2, 2000, "LSA dimensions"),
      int_field("semantic.window", 5, 1, 100, "LSA co-occurrence window (+- words)"),
      int_field("fit.restarts", 4, 1, 1000, "random restarts of the fit"),
      bool_field("fit.start_from_model", false, "the first restart starts at the model.* values"),
      int_field("fit.steps", 250, 1, 1000000, "Adam steps per restart"),
      real_field("fit.lr", 0.05, 1e-6, 10, "Adam learning rate on the unconstrained parameters"),
      int_field("sim.replications", 10, 1, 100000, "simulated runs of every list"),
      choice_field("sim.rule", "softmax", {"softmax", "lca"}, "recall rule of simulate mode"),
      choice_field("sim.params", "model", {"model", "polyn2009"},
                   "simulate mode: the model.* values, or Polyn 2009's CMR Full preset"),
      real_field("model.B_enc", d.B_enc, 0, 1, "encoding drift rate, (0, 1]"),
      real_field("model.B_start", d.B_start, 0, 1, "start-of-list reinstatement, [0, 1]"),
      real_field("model.B_rec", d.B_rec, 0, 1, "recall drift rate, (0, 1]"),
      real_field("model.gamma_fc", d.gamma_fc, 0, 1, "L_FC, M^FC_pre = (1 - gamma_fc) I"),
      real_field("model.L_cf", d.L_cf, 0, big, "M^CF learning rate (held at this in fits)"),
      real_field("model.phi_s", d.phi_s, 0, big, "primacy scale"),
      real_field("model.phi_d", d.phi_d, 0, big, "primacy decay"),
      real_field("model.s", d.s, 0, big, "semantic scale"),
      real_field("model.T", d.T, 0, big, "softmax temperature, > 0"),
      real_field("model.X1", d.X1, 0, 1, "stop probability at the first recall, (0, 1)"),
      real_field("model.X2", d.X2, 0, big, "growth of the stop probability per recall"),
      choice_field("run.mode", "fit", {"analyse", "fit", "simulate", "recover"}, "what to run"),
      int_field("run.seed", 1, 0, int64_t(1) << 53, "seed of restarts and simulations"),
      string_field("run.out", "runs/cmr_free_recall", "run directory: curves, plots, params.json"),
      bool_field("run.plots", true, "draw PNGs with gnuplot when installed"),
  };
  return std::make_shared<const Schema>("cmr_free_recall", std::move(f));
}

cmr::CMRParams model_params(const Config& cfg) {
  cmr::CMRParams p;
  p.B_enc = cfg.get_real("model.B_enc"), p.B_start = cfg.get_real("model.B_start");
  p.B_rec = cfg.get_real("model.B_rec"), p.gamma_fc = cfg.get_real("model.gamma_fc");
  p.L_cf = cfg.get_real("model.L_cf"), p.phi_s = cfg.get_real("model.phi_s");
  p.phi_d = cfg.get_real("model.phi_d"), p.s = cfg.get_real("model.s"), p.T = cfg.get_real("model.T");
  p.X1 = cfg.get_real("model.X1"), p.X2 = cfg.get_real("model.X2");
  p.validate();
  return p;
}

cmr::FreeRecallData load(const Config& cfg) {
  cmr::FreeRecallData data = read_psifr_csv(cfg.get_string("data.path"));
  const int64_t keep = cfg.get_int("data.max_subjects");
  if (keep > 0) {
    std::set<int64_t> subjects;
    std::vector<cmr::RecallList> kept;
    for (const cmr::RecallList& rl : data.lists) {
      if (!subjects.count(rl.subject) && (int64_t)subjects.size() == keep) continue;
      subjects.insert(rl.subject);
      kept.push_back(rl);
    }
    data.lists = std::move(kept);
  }
  return data;
}

cmr::Similarity semantics(const Config& cfg, const cmr::FreeRecallData& data) {
  std::string src = cfg.get_string("semantic.source");
  if (src == "auto") src = data.has_categories() ? "categories" : "corpus";
  if (src == "none") {
    cmr::Similarity s;
    s.source = "none (s = 0)";
    return s;
  }
  if (src == "categories") {
    ENGRAM_CHECK(data.has_categories(), "semantic.source=categories but {} has no category column",
                 data.source);
    return cmr::category_similarity(data.pool_categories);
  }
  if (src == "file") return cmr::similarity_from_file(cfg.get_string("semantic.file"), data.pool);
  cmr::LsaOptions o;
  o.dims = cfg.get_int("semantic.dims"), o.window = cfg.get_int("semantic.window");
  return cmr::corpus_similarity(data.pool, {cfg.get_string("semantic.corpus")}, o);
}

int64_t subject_count(const cmr::FreeRecallData& d) {
  std::set<int64_t> s;
  for (const cmr::RecallList& rl : d.lists) s.insert(rl.subject);
  return (int64_t)s.size();
}

// The four measures of one data set.
struct Measures {
  cmr::Curve spc, pfr, crp, cat;
  bool has_cat = false;
};
Measures measure(const cmr::FreeRecallData& d) {
  Measures m{cmr::spc(d.lists), cmr::pnr(d.lists, 1), cmr::lag_crp(d.lists, 5), {}, d.has_categories()};
  if (m.has_cat) m.cat = cmr::category_crp(d.lists);
  return m;
}

std::string row(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += std::isfinite(x) ? fmt::format(" {:.3f}", x) : "   -  ";
  return s;
}

void print_measures(const std::string& what, const Measures& m) {
  fmt::print("{}:\n  SPC    {}\n  PFR    {}\n  lagCRP {}  (lags -5..+5)\n", what, row(m.spc.mean),
             row(m.pfr.mean), row(m.crp.mean));
  if (m.has_cat) fmt::print("  category CRP {:.3f}\n", m.cat.mean[0]);
}

// Plots observed (and simulated, when given) curves; returns the largest gap per curve.
std::map<std::string, double> plot_all(const Config& cfg, const Measures& obs, const Measures* sim,
                                       const std::string& sim_name) {
  std::map<std::string, double> gaps;
  const std::string dir = cfg.get_string("run.out");
  auto one = [&](const std::string& file, const std::string& title, const std::string& xl,
                 const std::string& yl, const cmr::Curve& o, const cmr::Curve* s) {
    CurvePlot p{file, fmt::format("{} ({})", title, fs::path(cfg.get_string("data.path")).filename().string()),
                xl, yl, o.x, {{"observed", o.mean}}};
    if (s) {
      p.series.push_back({sim_name, s->mean});
      gaps[file] = largest_gap(o.mean, s->mean);
    }
    std::string note = cfg.get_bool("run.plots") && nn::dist::is_lead() ? write_curve_plot(dir, p) : "";
    if (!note.empty()) fmt::print("plot: {}\n", note);
  };
  one("spc", "Serial position curve", "serial position", "recall probability", obs.spc,
      sim ? &sim->spc : nullptr);
  one("pfr", "Probability of first recall", "serial position", "probability", obs.pfr,
      sim ? &sim->pfr : nullptr);
  one("lag_crp", "Lag-CRP", "lag", "conditional response probability", obs.crp,
      sim ? &sim->crp : nullptr);
  if (obs.has_cat && sim && sim->has_cat) gaps["category_crp"] = std::abs(obs.cat.mean[0] - sim->cat.mean[0]);
  return gaps;
}

nlohmann::json params_json(const cmr::CMRParams& p) {
  return {{"B_enc", p.B_enc}, {"B_start", p.B_start}, {"B_rec", p.B_rec}, {"gamma_fc", p.gamma_fc},
          {"L_cf", p.L_cf},   {"phi_s", p.phi_s},     {"phi_d", p.phi_d}, {"s", p.s},
          {"T", p.T},         {"X1", p.X1},           {"X2", p.X2}};
}

cmr::FitResult run_fit(const Config& cfg, const cmr::FreeRecallData& data, const cmr::Similarity& sem) {
  cmr::ListBatch batch = cmr::make_batch(data.lists, sem.matrix);
  cmr::FitOptions fo;
  fo.restarts = cfg.get_int("fit.restarts"), fo.steps = cfg.get_int("fit.steps");
  fo.lr = cfg.get_real("fit.lr"), fo.seed = (uint64_t)cfg.get_int("run.seed");
  fo.semantic = !sem.matrix.empty();
  fo.base = model_params(cfg);
  fo.start_from_base = cfg.get_bool("fit.start_from_model");
  fmt::print("fit: {} lists, {} recall events, {} restarts x {} Adam steps (lr {}), pooled "
             "negative log-likelihood over all lists\n", batch.B,
             std::accumulate(batch.n_recalls.begin(), batch.n_recalls.end(), int64_t(0)),
             fo.restarts, fo.steps, fo.lr);
  std::fflush(stdout);
  cmr::FitResult r = cmr::fit(batch, fo, [](const std::string& line) {
    fmt::print("  {}\n", line);
    std::fflush(stdout);
  });
  fmt::print("fit: best nll {:.2f} in {:.1f} s\n  {}\n", r.nll, r.seconds, r.params.str());
  return r;
}

int run(Config& cfg) {
  auto t0 = std::chrono::steady_clock::now();
  const std::string mode = cfg.get_string("run.mode"), dir = cfg.get_string("run.out");
  cmr::CMRParams model = model_params(cfg);  // validates model.* before any work
  cmr::FreeRecallData data = load(cfg);
  ENGRAM_CHECK(!data.lists.empty(), "{}: no lists", data.source);
  const bool lead = nn::dist::is_lead();
  if (!lead && !std::freopen("/dev/null", "w", stdout)) ENGRAM_FAIL("rank {}: cannot silence stdout", nn::dist::rank());
  if (lead) {
    fs::create_directories(dir);
    std::ofstream(fs::path(dir) / "config.yaml") << cfg.to_yaml();
  }
  fmt::print("cmr_free_recall: {} | {} subjects, {} lists of {} items{}\n", data.source,
             subject_count(data), data.lists.size(), data.list_length,
             data.has_categories() ? fmt::format(", categories: {}", fmt::join(data.category_names, " "))
                                   : "");
  Measures obs = measure(data);
  print_measures("observed", obs);
  Generator gen((uint64_t)cfg.get_int("run.seed"));
  const int64_t reps = cfg.get_int("sim.replications");
  std::string final_line = fmt::format("final: mode={} subjects={} lists={}", mode,
                                       subject_count(data), data.lists.size());
  if (mode == "analyse") {
    plot_all(cfg, obs, nullptr, "");
  } else {
    cmr::Similarity sem = semantics(cfg, data);
    fmt::print("semantic: {}{}\n", sem.source,
               sem.missing.empty() ? "" : fmt::format(" ({} pool items unknown to it)", sem.missing.size()));
    nlohmann::json out;
    cmr::CMRParams simulated = model;
    cmr::RecallRule rule = cfg.get_string("sim.rule") == "lca" ? cmr::RecallRule::lca : cmr::RecallRule::softmax;
    if (mode == "fit") {
      cmr::FitResult r = run_fit(cfg, data, sem);
      simulated = r.params, rule = cmr::RecallRule::softmax;
      out = {{"fitted", params_json(r.params)}, {"nll", r.nll}, {"lists", r.lists},
             {"recall_events", r.recalls}, {"restart_nll", r.restart_nll}, {"seconds", r.seconds}};
      final_line += fmt::format(" nll={:.2f} nll_per_list={:.4f}", r.nll, r.nll / double(r.lists));
    } else if (mode == "recover") {
      cmr::FreeRecallData fake = cmr::simulate(model, data, sem.matrix, cmr::RecallRule::softmax, 1, gen);
      fmt::print("recover: simulated one run of every list from {}\n", model.str());
      cmr::FitResult r = run_fit(cfg, fake, sem);
      cmr::ListBatch fb = cmr::make_batch(fake.lists, sem.matrix);
      double true_nll = -sum(cmr::log_likelihood(cmr::CMRTensors::from(model), fb)).item();
      fmt::print("recover: nll at the true parameters {:.2f}, at the fit {:.2f}\n  param    true  "
                 "recovered\n", true_nll, r.nll);
      nlohmann::json t = params_json(model), g = params_json(r.params);
      for (auto& [k, v] : t.items())
        fmt::print("  {:<9}{:7.3f} {:9.3f}\n", k, v.get<double>(), g[k].get<double>());
      out = {{"true", t}, {"recovered", g}, {"true_nll", true_nll}, {"fit_nll", r.nll}};
      simulated = r.params, rule = cmr::RecallRule::softmax;
      final_line += fmt::format(" true_nll={:.2f} fit_nll={:.2f}", true_nll, r.nll);
    } else if (cfg.get_string("sim.params") == "polyn2009") {
      simulated = cmr::polyn2009_full();
      fmt::print("simulate: Polyn et al. 2009 CMR Full: {} (kappa {} lambda {} eta {} dt/tau {})\n",
                 simulated.str(), simulated.kappa, simulated.lambda, simulated.eta, simulated.dt_tau);
    }
    cmr::FreeRecallData sim = cmr::simulate(simulated, data, sem.matrix, rule, reps, gen);
    Measures m = measure(sim);
    print_measures(fmt::format("simulated ({} runs of every list, {} rule)", reps,
                               rule == cmr::RecallRule::softmax ? "softmax" : "LCA"), m);
    std::map<std::string, double> gaps = plot_all(cfg, obs, &m, "CMR");
    for (auto& [k, v] : gaps) final_line += fmt::format(" {}_gap={:.3f}", k, v);
    out["simulated_params"] = params_json(simulated);
    out["largest_gap"] = gaps;
    if (lead) std::ofstream(fs::path(dir) / "params.json") << out.dump(2) << "\n";
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("{} seconds={:.1f}\n", final_line, secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classic CMR on free-recall data: measures, a gradient-descent fit, simulation"};
  ConfigOptions options(app);
  options.shortcut("--data", "data.path", "psifr CSV");
  options.shortcut("--mode", "run.mode", "analyse | fit | simulate | recover");
  options.shortcut("--seed", "run.seed", "seed of restarts and simulations");
  options.shortcut("--out", "run.out", "run directory");
  options.shortcut("--steps", "fit.steps", "Adam steps per restart");
  bool distributed = false;
  app.add_flag("--distributed", distributed, "split the fit's lists over the ranks of mpirun -np N");
  return parse_and_run(app, argc, argv, [&] {
    if (options.help_printed(*schema())) return 0;
    Config cfg(schema());
    options.apply(cfg);
    return run_maybe_distributed(distributed, [&] { return run(cfg); });
  });
}
