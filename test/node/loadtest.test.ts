/**
 * A smoke run of the load tester, so it cannot rot: the outage scenario with
 * every client kind, a few clients, a few seconds. It must finish by itself,
 * replay every step of the outage and write both reports.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

describe("npm run loadtest (smoke)", () => {
  it("runs the outage scenario with every client kind, on one object and over 4 sync shards, and writes a JSON and an HTML report", () => {
    const out = mkdtempSync(join(tmpdir(), "calmsync-loadtest-"));
    try {
      const root = resolve(import.meta.dirname, "../..");
      const run = spawnSync(
        process.execPath,
        ["scripts/loadtest.ts", "--scenario", "outage", "--clients", "6", "--seconds", "10", "--compare", "--shards", "1,4", "--out", out],
        {
          cwd: root,
          encoding: "utf8",
          timeout: 280_000,
          env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
        },
      );
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      const files = readdirSync(out);
      expect(files.filter((f) => f.endsWith(".html"))).toHaveLength(1);
      const report = JSON.parse(
        readFileSync(
          join(
            out,
            files.find((f) => f.endsWith(".json"))!,
          ),
          "utf8",
        ),
      ) as {
        reports: { kind: string; shards: number; seconds: unknown[]; summary: { socketAttempts: number; events: string } }[];
      };
      expect(report.reports.map((r) => `${r.kind}/${r.shards}`)).toEqual(["current/1", "legacy/1", "transport/1", "current/4", "legacy/4", "transport/4"]);
      for (const r of report.reports) {
        expect(r.seconds.length).toBeGreaterThanOrEqual(5);
        expect(r.summary.socketAttempts).toBeGreaterThanOrEqual(6);
        expect(r.summary.events).toMatch(/tier lowered.*burst.*killed and restarted.*tier restored/);
        // What the operator saw when the tier was lowered: the knobs below it, named.
        expect(r.summary.events).toMatch(/operator saw: BELOW TIER: maxSessions 1000 \(tier: 30000\)/);
      }
      expect(
        readFileSync(
          join(
            out,
            files.find((f) => f.endsWith(".html"))!,
          ),
          "utf8",
        ),
      ).toMatch(/<svg/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);

  it("runs the search scenario: compactions and unrelated writes invalidate nothing", () => {
    const out = mkdtempSync(join(tmpdir(), "calmsync-loadtest-"));
    try {
      const root = resolve(import.meta.dirname, "../..");
      const run = spawnSync(process.execPath, ["scripts/loadtest.ts", "--scenario", "search", "--clients", "6", "--seconds", "8", "--out", out], {
        cwd: root,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      });
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      const report = JSON.parse(
        readFileSync(
          join(
            out,
            readdirSync(out).find((f) => f.endsWith(".json"))!,
          ),
          "utf8",
        ),
      ) as {
        reports: { summary: { compactions: number; invalidationsOnceLive: number | null; searchP50Ms: number | null; liveAtEnd: number } }[];
      };
      const summary = report.reports[0]!.summary;
      expect(summary.liveAtEnd).toBe(6);
      expect(summary.compactions).toBeGreaterThan(0);
      expect(summary.invalidationsOnceLive).toBe(0);
      expect(summary.searchP50Ms).not.toBeNull();
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 150_000);
});
