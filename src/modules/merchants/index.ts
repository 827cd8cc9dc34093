export { createMerchantsService, type MerchantsService } from './merchants.service.ts';
export { registerMerchantRoutes } from './merchants.routes.ts';
export { getTerminalContext, terminalContextSql, merchantExists, type TerminalContext } from './merchants.repo.ts';
export * as merchantSchemas from './merchants.schemas.ts';
export { MERCHANT_ENCRYPTED_FIELDS } from './merchants.fields.ts';
/** Batch paths for the onboarding import: the API's checks and encryption, one statement per batch. */
export * as merchantsBulk from './merchants.bulk.ts';
