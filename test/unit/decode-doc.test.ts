// decodeDoc: a record's big doc is decoded once per process per exact text. The same text gives
// the same (frozen) doc; a text that differs anywhere gives its own; the cache is bounded.
import { describe, expect, it } from 'vitest';
import { decodeDoc, recordFromFields } from '../../queues/records.js';

function bigDoc(id: string, hosts = 1000): Record<string, unknown> {
  const names = Array.from({ length: hosts }, (_, i) => `node${String(i).padStart(4, '0')}`);
  return {
    id,
    tool: 'ping',
    plan: { tool: 'ping', hosts: names, batches: [{ steps: [{ id: 'ping', hosts: names, action: { kind: 'exec', argv: ['true'] } }] }], failureBudget: 0 },
    planHash: 'h',
  };
}

describe('decodeDoc', () => {
  it('decodes a big doc once: the same text (another string with it) gives the same doc', () => {
    const text = JSON.stringify(bigDoc('job-a'));
    const again = (' ' + text).slice(1); // equal, not the same string object
    const first = decodeDoc(text);
    expect(decodeDoc(again)).toBe(first);
    expect(first).toEqual(JSON.parse(text));
  });

  it('a text that differs in one byte is decoded afresh, and each reads what its text holds', () => {
    const text = JSON.stringify(bigDoc('job-b'));
    const edited = text.replace('"node0999"', '"node0998"');
    expect(edited).not.toBe(text);
    expect(edited.length).toBe(text.length);
    const a = decodeDoc(text);
    const b = decodeDoc(edited);
    expect(b).not.toBe(a);
    expect((a as unknown as { plan: { hosts: string[] } }).plan.hosts.at(-1)).toBe('node0999');
    expect((b as unknown as { plan: { hosts: string[] } }).plan.hosts.at(-1)).toBe('node0998');
  });

  it('the shared doc is frozen all the way down: a reader cannot change it for the others', () => {
    const doc = decodeDoc(JSON.stringify(bigDoc('job-c'))) as unknown as { plan: { hosts: string[]; batches: { steps: { action: { argv: string[] } }[] }[] } };
    expect(() => doc.plan.hosts.push('evil')).toThrow(TypeError);
    expect(() => {
      doc.plan.batches[0]!.steps[0]!.action.argv[0] = 'rm';
    }).toThrow(TypeError);
    expect(doc.plan.batches[0]!.steps[0]!.action.argv[0]).toBe('true');
  });

  it('the cache stays bounded: the least recently read docs are let go', () => {
    const texts = Array.from({ length: 20 }, (_, i) => JSON.stringify(bigDoc(`job-e${i}`)));
    const firsts = texts.map((t) => decodeDoc(t));
    // The most recent ones are still shared; the oldest were let go and are decoded again.
    expect(decodeDoc(texts[19]!)).toBe(firsts[19]);
    expect(decodeDoc(texts[0]!)).not.toBe(firsts[0]);
  });

  it('records decoded from the same fields share the doc but not the record', () => {
    const fields = { doc: JSON.stringify(bigDoc('job-f')), state: 'queued', votes: '[]', attempt: '0' };
    const a = recordFromFields(fields);
    const b = recordFromFields({ ...fields, state: 'running' });
    expect(a).not.toBe(b);
    expect(a.plan).toBe(b.plan);
    expect([a.state, b.state]).toEqual(['queued', 'running']);
  });
});
