import { describe, expect, it } from 'vitest';
import { main as demo } from './demo.js';
import { main as executionService } from './execution-service.js';
import { main as orchestrator } from './orchestrator.js';
import { main as statusReport } from './status-report.js';

describe('examples', () => {
  it('the demo moves users from within_limit to exceeded and refuses past the daily limit', async () => {
    const { rows, standing } = await demo();
    expect(rows).toHaveLength(15);
    const alice = rows.filter((row) => row.user === 'alice');
    expect(alice.map((row) => row.status)).toEqual([
      'within_limit',
      'within_limit',
      'approaching_limit',
      'within_limit',
      'approaching_limit',
      'at_limit',
      'exceeded',
    ]);
    expect(alice.at(-1)).toMatchObject({
      decision: 'REFUSED',
      'binding rule': '10000 per_day',
      'used today': 9630,
    });
    // Carol's override of 30,000 a day keeps her within her limit all along.
    expect(rows.filter((row) => row.user === 'carol').map((row) => row.decision)).toEqual([
      'allowed',
      'allowed',
      'allowed',
    ]);
    expect(standing).toEqual([
      'alice  Quota at limit for llm_tokens. Remaining: 370/10000',
      'bob    Quota approaching limit for llm_tokens. Remaining: 640/10000',
      'carol  Quota OK for llm_tokens. Remaining: 19470/30000',
    ]);
  });

  it('execution-service runs what fits and refuses the task whose estimate does not', async () => {
    expect(await executionService()).toEqual([
      'task-1: Done: summarize the quarterly report',
      'task-2: Done: translate the summary into russian',
      'task-3: refused (estimated 3 LLM requests): Quota exceeded for llm_requests. Limit: 4, cannot proceed.',
      'alice has used 2 LLM requests and 817 tokens today',
    ]);
  });

  it('orchestrator answers with the quota message once the budget is spent', async () => {
    expect(await orchestrator()).toEqual([
      'On it: Find flights to Lisbon',
      'On it: Book a table for two',
      'On it: Какая погода в Москве?',
      'Quota exceeded for llm_requests. Limit: 3, cannot proceed.',
    ]);
  });

  it('status-report lists every quota and warns on those near their limit', async () => {
    expect(await statusReport()).toEqual([
      'Quotas of carol:',
      '  llm_requests            85 / 100  per_day   approaching_limit',
      '  llm_tokens        41000 / 100000  per_day   within_limit',
      '  database_queries       490 / 500  per_hour  at_limit',
      '  storage_space         200 / 1024  total     within_limit',
      'Warning: Quota approaching limit for llm_requests. Remaining: 15/100',
      'Warning: Quota at limit for database_queries. Remaining: 10/500',
    ]);
  });
});
