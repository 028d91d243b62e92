import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { LazyContentOptions } from '@lazy-content/core';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: LAZY_CONTENT_OPTIONS,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<LazyContentOptions>()
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
