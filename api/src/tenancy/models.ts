// Sequelize models of a tenant database. They are defined on each tenant's own
// Sequelize instance: a model class shared between instances would send its
// queries to whichever database initialised it last.
//
// `users.email_verified_at` (schema v7) is not an attribute: Sequelize names
// every attribute in each SELECT and RETURNING, so sign-in would fail on a
// tenant the operator has not yet migrated after an upgrade. It is read and
// written only through users/email-verification.ts.
import type { Model } from 'sequelize';
import {
  DataTypes,
  type InferAttributes,
  type InferCreationAttributes,
  type CreationOptional,
  type Sequelize,
} from 'sequelize';
import type { Role } from '../../../lib/tenant/index.js';

export interface UserModel extends Model<InferAttributes<UserModel>, InferCreationAttributes<UserModel>> {
  id: CreationOptional<string>;
  email: string;
  password_hash: string | null;
  first_name: string | null;
  last_name: string | null;
  role: Role;
  is_active: CreationOptional<boolean>;
  department: string | null;
  external_id: string | null;
  created_at: CreationOptional<Date>;
  updated_at: CreationOptional<Date>;
}

export interface TenantModels {
  User: ReturnType<typeof defineUser>;
}

function defineUser(sequelize: Sequelize) {
  return sequelize.define<UserModel>(
    'User',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      email: { type: DataTypes.TEXT, allowNull: false },
      password_hash: { type: DataTypes.TEXT, allowNull: true },
      first_name: { type: DataTypes.TEXT, allowNull: true },
      last_name: { type: DataTypes.TEXT, allowNull: true },
      role: { type: DataTypes.TEXT, allowNull: false },
      is_active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      department: { type: DataTypes.TEXT, allowNull: true },
      external_id: { type: DataTypes.TEXT, allowNull: true },
      created_at: DataTypes.DATE,
      updated_at: DataTypes.DATE,
    },
    { schema: 'app', tableName: 'users', timestamps: true, createdAt: 'created_at', updatedAt: 'updated_at' },
  );
}

export function defineModels(sequelize: Sequelize): TenantModels {
  return { User: defineUser(sequelize) };
}
