export { createMerchantsService, type MerchantsService } from './merchants.service.ts';
export { registerMerchantRoutes } from './merchants.routes.ts';
export { getTerminalContext, terminalContextSql, merchantExists, type TerminalContext } from './merchants.repo.ts';
export * as merchantSchemas from './merchants.schemas.ts';
export { MERCHANT_ENCRYPTED_FIELDS } from './merchants.fields.ts';
