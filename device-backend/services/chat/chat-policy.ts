// Who may talk to whom, as data (after Qubes qrexec policy): ordered rules, first match wins, then the
// defaults: the host may talk to everyone and everyone to the host; within one chat group allowed; across
// groups (or without a group) denied. explain() says which rule decided. Pure.

/** One end of a message as the core knows it: a VM's name (or the host), the chat name, the VM's group. */
export interface ChatParty {
  /** null for the host (the host API's names, and `host`). */
  readonly vm: string | null;
  /** '' for a sender without a registered name. */
  readonly name: string;
  readonly group: string | undefined;
  /**
   * Cluster mode: the host (daemon) the party is on, as its daemon is known in the cluster. Undefined on a
   * daemon without a cluster; the cluster hub fills it in for both ends before the policy is evaluated.
   */
  readonly host?: string | undefined;
}

/** A party's VM as guests and the API show it: `vm@host` for a party on another host, else the VM name. */
export function displayVm(p: { vm: string | null; host?: string | undefined }, localHost?: string): string | null {
  if (p.vm === null || p.host === undefined || p.host === localHost) return p.vm;
  return `${p.vm}@${p.host}`;
}

/**
 * Matches a party when every field given matches: `vm` (a VM name, or '@host' for the host side), `name`
 * (a chat name), `group` (a chatGroup). An empty selector ({}) matches everyone.
 */
export interface ChatSelector {
  vm?: string;
  name?: string;
  group?: string;
  /** Cluster mode: the host the party is on (cluster.host of its daemon). */
  host?: string;
}

export interface ChatRule {
  from: ChatSelector;
  to: ChatSelector;
  action: 'allow' | 'deny';
  /** Said in explanations and refusal logs. */
  note?: string;
}

export interface ChatPolicy {
  readonly rules: readonly ChatRule[];
}

export type PolicyDecider =
  | { kind: 'rule'; index: number; rule: ChatRule }
  | { kind: 'default'; name: 'host' | 'same-group' | 'cross-group' };

export interface PolicyDecision {
  allowed: boolean;
  decidedBy: PolicyDecider;
  /** One line in words: "rule 2 (deny lab -> prod): deny". */
  reason: string;
}

export const HOST_VM_SELECTOR = '@host';

export function matches(sel: ChatSelector, p: ChatParty): boolean {
  if (sel.vm !== undefined && sel.vm !== (p.vm ?? HOST_VM_SELECTOR)) return false;
  if (sel.name !== undefined && sel.name !== p.name) return false;
  if (sel.group !== undefined && sel.group !== p.group) return false;
  if (sel.host !== undefined && sel.host !== p.host) return false;
  return true;
}

const describeParty = (p: ChatParty): string => `${p.vm ?? HOST_VM_SELECTOR}${p.host ? `@${p.host}` : ''}/${p.name || '-'}${p.group ? ` (group ${p.group})` : ''}`;
const describeSelector = (s: ChatSelector): string =>
  Object.keys(s).length === 0 ? '*' : Object.entries(s).map(([k, v]) => `${k}=${v}`).join(',');

export function explain(policy: ChatPolicy, from: ChatParty, to: ChatParty): PolicyDecision {
  const index = policy.rules.findIndex((r) => matches(r.from, from) && matches(r.to, to));
  if (index >= 0) {
    const rule = policy.rules[index]!;
    const label = rule.note ?? `${describeSelector(rule.from)} -> ${describeSelector(rule.to)}`;
    return { allowed: rule.action === 'allow', decidedBy: { kind: 'rule', index, rule }, reason: `rule ${index} (${label}): ${rule.action}` };
  }
  if (from.vm === null || to.vm === null) return { allowed: true, decidedBy: { kind: 'default', name: 'host' }, reason: 'default: the host talks to everyone' };
  if (from.group !== undefined && from.group === to.group) {
    return { allowed: true, decidedBy: { kind: 'default', name: 'same-group' }, reason: `default: same chat group ${from.group}` };
  }
  return {
    allowed: false,
    decidedBy: { kind: 'default', name: 'cross-group' },
    reason: `default: ${describeParty(from)} and ${describeParty(to)} are not in one chat group`,
  };
}

export const DEFAULT_CHAT_POLICY: ChatPolicy = { rules: [] };

/** Checks rules loaded from a config file; returns what is wrong with the first bad one, or undefined. */
export function policyProblem(rules: readonly unknown[]): string | undefined {
  const keys = new Set(['vm', 'name', 'group', 'host']);
  for (const [i, r] of rules.entries()) {
    const rule = r as Partial<ChatRule> | null;
    if (!rule || typeof rule !== 'object') return `rule ${i} is not an object`;
    if (rule.action !== 'allow' && rule.action !== 'deny') return `rule ${i}: action must be allow or deny`;
    for (const side of ['from', 'to'] as const) {
      const sel = rule[side] as Record<string, unknown> | undefined;
      if (!sel || typeof sel !== 'object') return `rule ${i}: ${side} must be a selector object ({} for everyone)`;
      for (const [k, v] of Object.entries(sel)) {
        if (!keys.has(k)) return `rule ${i}: ${side}.${k} is not one of vm, name, group, host`;
        if (typeof v !== 'string') return `rule ${i}: ${side}.${k} must be a string`;
      }
    }
  }
  return undefined;
}
