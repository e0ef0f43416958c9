import type { Reporter, TestModule, TestSuite } from 'vitest/node';

/**
 * Ends the run with the plain "N passed, N failed, N skipped" line that CI reads to know tests
 * ran. A file or suite that failed outside its tests (an import error, a `beforeAll` that threw)
 * leaves its tests skipped; it counts as one failure of its own, named, so the line never says
 * "0 failed" about a run that failed.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const brokenSetups: string[] = [];
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      const containers: Array<TestModule | TestSuite> = [module, ...module.children.allSuites()];
      for (const container of containers) {
        if (container.state() !== 'failed') continue;
        const ownFailure = [...container.children.allTests()].some((test) => test.result().state === 'failed');
        const nestedFailure = [...container.children.allSuites()].some((suite) => suite.state() === 'failed');
        if (!ownFailure && !nestedFailure) brokenSetups.push(container.type === 'module' ? container.moduleId : `${container.module.moduleId} > ${container.fullName}`);
      }
    }
    failed += brokenSetups.length;
    for (const name of brokenSetups) process.stdout.write(`\nfailed outside any test (set-up, teardown or import): ${name}`);
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
