// The rewards module's public face: other modules import only from here.
export {
  createRewardsService,
  programView,
  DEFAULT_TIMEZONE,
  type RewardsService,
  type RewardsDeps,
  type ProgramInput,
  type ProgramView,
} from './rewards.service.ts';
export { registerRewardsRoutes } from './rewards.routes.ts';
export { PaymentRewardsRequest, type PaymentRewardsInput } from './rewards.schemas.ts';
export * as rewardsSchemas from './rewards.schemas.ts';
export {
  computeEarn,
  normalizeRule,
  type EarnRule,
  type EarnContext,
  type EarnBreakdown,
  type RuleConditions,
} from './rules.ts';
export {
  normalizePhone,
  canonicalCustomer,
  createCustomerHasher,
  loadCustomerKey,
  type CustomerIdentity,
} from './customers.ts';
export { verifyRewards, runRewardsVerify, type RewardsViolation } from './rewards.verify.ts';
export { ensureDemoProgram, DEMO_PROGRAM } from './demo.ts';
/** Bulk paths for the onboarding import: opening balances, coalition membership. */
export * as rewardsBulk from './opening.ts';
/** Points history from a legacy system, for the onboarding import of payment history. */
export * as rewardsHistory from './history.ts';
