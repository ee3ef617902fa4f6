// ota campaign serve|report: the operator's page of campaigns
// (ota/fleet/campaign_view.hpp), live from the broker or written from a
// campaign directory's journal.
#include <signal.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include "broker.hpp"
#include "cli.hpp"
#include "ota/core/url.hpp"
#include "ota/fleet/campaign_view.hpp"
#include "ota/fleet/http_server.hpp"

namespace ota::cli {

namespace {

namespace cp = ota::campaign;

volatile bool g_serve_stop = false;
void on_serve_signal(int) { g_serve_stop = true; }

struct ServeArgs {
  std::string id, fleet, listen = "127.0.0.1:8080";
  BrokerArgs broker;
};

int run_serve(const Context& ctx, const ServeArgs& a) {
  if (auto addr = httpd::parse_listen_address(a.listen); !addr)
    return report(ctx, "campaign serve", addr.error().with_context("--listen"));
  auto client = connect_broker(a.broker, "ota-serve-" + random_suffix());
  if (!client) return report(ctx, "campaign serve", client.error());
  cp::LiveViews live(a.fleet, a.id);
  for (const auto& f : live.filters())
    if (auto st = (*client)->subscribe(f, 1); !st) return report(ctx, "campaign serve", st.error());
  std::mutex mu;
  std::string view_json = cp::encode_views({}, static_cast<trust::Time>(std::time(nullptr)), "");
  const std::string page = cp::render_page("");
  const std::string source = "live from " + redact_url(a.broker.url) + ", fleet " + a.fleet;
  auto server = httpd::serve(a.listen, [&](const std::string& path) -> httpd::Response {
    if (path == "/" || path == "/index.html") return {200, "text/html; charset=utf-8", page};
    if (path == "/api/view") {
      std::lock_guard<std::mutex> lock(mu);
      return {200, "application/json", view_json};
    }
    return {404, "text/plain; charset=utf-8", "not found\n"};
  });
  if (!server) return report(ctx, "campaign serve", server.error().with_context("--listen"));
  struct sigaction sa {};
  sa.sa_handler = on_serve_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  if (!ctx.quiet) std::fprintf(stderr, "serving %s/ (read-only; Ctrl-C stops)\n", (*server)->url().c_str());
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  bool changed = true;
  while (!g_serve_stop) {
    auto ev = (*client)->next(std::chrono::milliseconds(250));
    if (ev && ev->kind == mqtt::Event::Kind::kMessage) {
      live.take(ev->message, static_cast<trust::Time>(std::time(nullptr)));
      changed = true;
    } else if (ev && ev->kind == mqtt::Event::Kind::kConnected) {
      for (const auto& f : live.filters()) (void)(*client)->subscribe(f, 1);
    }
    // The page's JSON at most every 500 ms: a flood of device states costs one encoding.
    const auto now = std::chrono::steady_clock::now();
    if (changed && now - last >= std::chrono::milliseconds(500)) {
      std::string j = cp::encode_views(live.views(), static_cast<trust::Time>(std::time(nullptr)), source);
      std::lock_guard<std::mutex> lock(mu);
      view_json = std::move(j);
      last = now;
      changed = false;
    }
  }
  server->reset();
  (*client)->stop();
  return 0;
}

struct ReportArgs {
  std::string id, dir = "campaigns", out;
  bool html = false;
};

int run_report(const Context& ctx, const ReportArgs& a) {
  auto v = cp::view_from_journal(a.dir + "/" + a.id);
  if (!v) return report(ctx, "campaign report", v.error());
  const std::string json = cp::encode_views({*v}, static_cast<trust::Time>(std::time(nullptr)),
                                            "journal " + a.dir + "/" + a.id + "/journal.jsonl");
  const std::string text = a.html ? cp::render_page(json) : json + "\n";
  if (a.out.empty() || a.out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  const std::string tmp = a.out + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!f.flush()) return report(ctx, "campaign report", Error{ErrorCode::kIo, "cannot write " + tmp});
  }
  if (std::rename(tmp.c_str(), a.out.c_str()) != 0)
    return report(ctx, "campaign report", Error{ErrorCode::kIo, "cannot rename " + tmp + " to " + a.out});
  if (!ctx.quiet) std::fprintf(stderr, "wrote %s\n", a.out.c_str());
  return 0;
}

}  // namespace

void add_campaign_view_commands(CLI::App* camp, Context& ctx, int& exit_code) {
  auto s = std::make_shared<ServeArgs>();
  auto* serve = camp->add_subcommand("serve", "A live, read-only page of one or all campaigns of a fleet");
  serve->footer(
      "Waves over time with the gates' thresholds, failures by reason and a searchable device table,\n"
      "from what the broker holds (documents, the controllers' status, device states; shown, not verified).\n"
      "Example:\n  ota campaign serve --fleet meters --broker mqtt://127.0.0.1:1883 --listen 127.0.0.1:8080");
  serve->add_option("ID", s->id, "Only this campaign (default: every campaign of the fleet)");
  serve->add_option("--fleet", s->fleet, "Fleet name")->required();
  serve->add_option("--listen", s->listen, "HOST:PORT to serve on (loopback by default)")->capture_default_str();
  s->broker.add(serve);
  serve->add_flag("-q,--quiet", ctx.quiet, "No output");
  serve->callback([&ctx, &exit_code, s] { exit_code = run_serve(ctx, *s); });

  auto r = std::make_shared<ReportArgs>();
  auto* rep = camp->add_subcommand("report", "The campaign's page (or its JSON) from the controller's journal");
  rep->footer("Example:\n  ota campaign report fw-1.1 --html -o fw-1.1.html");
  rep->add_option("ID", r->id, "Campaign id")->required();
  rep->add_option("--dir", r->dir, "Campaign directories live here")->capture_default_str();
  rep->add_flag("--html", r->html, "A self-contained HTML page (default: the view as JSON)");
  rep->add_option("-o,--output", r->out, "Write here (default: stdout)");
  rep->add_flag("-q,--quiet", ctx.quiet, "No output but the report");
  rep->callback([&ctx, &exit_code, r] { exit_code = run_report(ctx, *r); });
}

}  // namespace ota::cli
