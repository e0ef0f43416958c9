import type { Reporter, TestModule, TestSuite } from 'vitest/node';

/**
 * Ends the run with the plain "N passed, N failed, N skipped" line that CI reads to know tests
 * ran. A file or suite that failed outside its tests (an import error, a `beforeAll` that threw)
 * leaves its tests skipped; it counts as one failure of its own, named, so the line never says
 * "0 failed" about a run that failed.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const total = { passed: 0, failed: 0, skipped: 0 };
    // Per vitest project (the controller suite runs on both engines: sqlite and postgres).
    const byProject = new Map<string, typeof total>();
    const brokenSetups: string[] = [];
    for (const module of modules) {
      const project = module.project.name || 'default';
      const counts = byProject.get(project) ?? { passed: 0, failed: 0, skipped: 0 };
      byProject.set(project, counts);
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        const key = state === 'passed' ? 'passed' : state === 'failed' ? 'failed' : 'skipped';
        total[key]++;
        counts[key]++;
      }
      const containers: Array<TestModule | TestSuite> = [module, ...module.children.allSuites()];
      for (const container of containers) {
        if (container.state() !== 'failed') continue;
        const ownFailure = [...container.children.allTests()].some((test) => test.result().state === 'failed');
        const nestedFailure = [...container.children.allSuites()].some((suite) => suite.state() === 'failed');
        if (ownFailure || nestedFailure) continue;
        brokenSetups.push(`${project === 'default' ? '' : `[${project}] `}${container.type === 'module' ? container.moduleId : `${container.module.moduleId} > ${container.fullName}`}`);
        total.failed++;
        counts.failed++;
      }
    }
    for (const name of brokenSetups) process.stdout.write(`\nfailed outside any test (set-up, teardown or import): ${name}`);
    if (byProject.size > 1) {
      for (const [project, counts] of byProject) process.stdout.write(`\n${project}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
    }
    process.stdout.write(`\ntests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
  }
}
